"""The one fake Gemini for unit tests: each call answered by a handler, as httpx's MockTransport.

Usage::

    gemini = FakeGemini(lambda call: sse(text_event("Hi", 60, "STOP")))
    app = app_with(gemini)                     # the real app, calling the fake instead of Gemini
    proxy = proxy_with(by_key({"k1": quota(), "k2": [EVENT]}))  # or just the worker's proxy
    gemini.handler = lambda call: [None, UpstreamUnreachable("cut")]  # another behaviour

A handler takes the `Call` and returns the stream's reads (bytes; None for a silence; an
exception ends the stream by raising it) or a `FakeStream`, or raises to fail the call itself.
Integration tests use the simulator process instead (tests.servers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import gevent
from flask import Flask

from app import create_app
from app.chunker import Content
from app.config import Config
from app.failover import Generation
from app.formats import FRAMINGS, Name
from app.keys import Key, KeyPool
from app.logs import RequestRecord
from app.proxy import Proxy, get_proxy, init_app
from app.upstream import GeminiClient

SECRET_KEY = "AIza" + "s" * 35
PASSWORD = "unit-test-password"
AUTH = {"Authorization": f"Bearer {PASSWORD}"}
# One event with the whole answer and its finishReason.
EVENT = (
    b'data: {"candidates":[{"content":{"parts":[{"text":"all of it"}]},"finishReason":"STOP"}],'
    b'"usageMetadata":{"promptTokenCount":1,"totalTokenCount":60}}\r\n\r\n'
)

Read = bytes | Exception | None


@dataclasses.dataclass
class FakeStream:
    """An upstream stream of given reads; it remembers being closed, and how."""

    reads: Iterable[Read]
    closed: bool = False
    reused: bool = False

    def iter_bytes(self) -> Iterator[bytes | None]:
        for read in self.reads:
            if isinstance(read, Exception):
                raise read
            yield read

    def close(self, reuse: bool = False) -> None:
        self.closed, self.reused = True, reuse


@dataclasses.dataclass(frozen=True)
class Call:
    """One call the proxy made: what it asked for, with which key (by id)."""

    method: str
    path: str
    key: str
    body: bytes | None


Handler = Callable[[Call], "Iterable[Read] | FakeStream"]


class FakeGemini(GeminiClient):
    """A GeminiClient whose every call is answered by `handler`; it keeps the calls made."""

    def __init__(self, handler: Handler) -> None:  # no Session: nothing goes on the network
        self.handler = handler
        self.calls: list[Call] = []

    @property
    def keys(self) -> list[str]:
        """The ids of the keys called, in order."""
        return [call.key for call in self.calls]

    @property
    def bodies(self) -> list[bytes | None]:
        """The bodies sent, in order."""
        return [call.body for call in self.calls]

    def open(
        self, method: str, path: str, key: Key, body: bytes | None = None, *_: Any, **__: Any
    ) -> Any:
        call = Call(method, path, key.id, body)
        self.calls.append(call)
        answer = self.handler(call)
        return answer if isinstance(answer, FakeStream) else FakeStream(answer)


def by_key(script: dict[str, Iterable[Read] | FakeStream | BaseException]) -> Handler:
    """A handler answering each key (by id) as scripted; an exception is raised by the call."""

    def handle(call: Call) -> Iterable[Read] | FakeStream:
        answer = script[call.key]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return handle


def slowly(handler: Handler, seconds: float) -> Handler:
    """`handler`, answering only after `seconds`, like a Gemini slow to send its headers."""

    def handle(call: Call) -> Iterable[Read] | FakeStream:
        gevent.sleep(seconds)
        return handler(call)

    return handle


def proxy_with(handler: Handler, keys: int = 2, **settings: Any) -> Proxy:
    """A worker's proxy calling a FakeGemini, with `keys` keys (ids k1, k2, ...)."""
    secrets = settings.pop("api_keys", None) or tuple(f"secret-{n}" for n in range(keys))
    config = Config(api_keys=secrets, **settings)
    pool = KeyPool(config.api_keys, config.key_disable_seconds, seed=0)
    return Proxy(config, pool, FakeGemini(handler))


def app_with(gemini: FakeGemini, **settings: Any) -> Flask:
    """The real app (one key, SECRET_KEY; password PASSWORD) calling `gemini` for Gemini."""
    app = create_app(Config(api_keys=(SECRET_KEY,), api_password=PASSWORD, **settings))
    with app.app_context():
        init_app(app, dataclasses.replace(get_proxy(), client=gemini))
    return app


def record() -> RequestRecord:
    """A fresh record of a /generate request."""
    return RequestRecord("rid", "POST", "/generate")


def generation(proxy: Proxy, rec: RequestRecord | None = None) -> Generation:
    """/generate's body on `proxy` for a fixed model and prompt."""
    return Generation(proxy, "m", b"{}", record() if rec is None else rec)


def relayed(
    reads: Iterable[Read],
    chunk_token: int = 10,
    framing: Name = "json",
    content: Content = "cumulative",
    secrets: tuple[str, ...] = (SECRET_KEY,),
) -> tuple[list[bytes], RequestRecord]:
    """The body pieces /generate makes of one Gemini stream, one key, and the request's record."""
    proxy = proxy_with(lambda call: reads, api_keys=secrets, chunk_token=chunk_token)
    rec = record()
    body = Generation(proxy, "m", b"{}", rec, FRAMINGS[framing], content)
    pieces = [body.first(), *body]
    body.close()
    return pieces, rec
