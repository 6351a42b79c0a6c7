"""The attempt loop: one request's calls to Gemini, a key per attempt, as the body the client reads.

Usage::

    answer = Generation(get_proxy(), model, raw, record, ARRAY, "cumulative")
    first = answer.first()  # raises the client's error (UpstreamError) while nothing went out
    ...                     # then the rest: for piece in answer
    answer.close()          # once the response is sent: releases the upstream

One loop (`Attempts._run`) serves /generate (`Generation`) and Gemini's own paths
(`app.passthrough.PassThrough`). Each attempt is the same named steps:

1. `_next_key`: the next usable key, while MAX_ATTEMPTS and FAILOVER_DEADLINE allow;
2. `_call`: Gemini called with it, in a greenlet of its own;
3. `_wait`: wait for the call, sending keep-alives where the body allows them;
4. `_answer`: the call's stream, counted, or its failure;
5. `_relay`: this attempt's stream relayed as the client's body;
6. `_judge`: a failure acted on (its key cooled down or disabled), as the client would see it.

Before the body begins a failed attempt costs nothing visible, so the next key is tried when the
verdict allows. After it, a retry would repeat what the client has: `_broke_off` ends the body.
When no attempt is left, `_give_up` answers with `_client_error`'s choice.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Protocol

import gevent

from . import metrics
from .chunker import Chunker, Content
from .classify import DISABLING
from .errors import UpstreamError, error_body
from .formats import ARRAY, Framing
from .keys import EVERY_MODEL, Key, Shortage
from .logs import CLIENT_CLOSED, LOGGER, RequestRecord
from .relay import KeepAlive, Relay, end_with_error
from .upstream import UpstreamStream, refused_key

if TYPE_CHECKING:
    from .proxy import Proxy

# The answer when no key is usable, by why: Gemini's quota, Gemini's errors, refused keys.
SHORTAGE_STATUS: dict[Shortage, int] = {"quota": 429, "upstream_error": 503, "disabled": 500}
SHORTAGE_MESSAGE: dict[Shortage, str] = {
    "quota": "every API key of the proxy is out of quota; retry after the Retry-After seconds",
    "upstream_error": "Gemini failed on every API key of the proxy just now; retry shortly",
    "disabled": "every API key of the proxy is refused by Gemini (invalid or forbidden)",
}
DEADLINE_MESSAGE = "FAILOVER_DEADLINE passed before Gemini could be called"
INTERNAL = "the proxy failed while relaying the stream; see its log"
# The upstream metric's label for a call Gemini accepted; the label of an answer made without
# any call.
OPENED = "200"
NO_CALL = "none"


class AttemptRelay(Protocol):
    """What the loop needs of an attempt's relay (app.relay.Relay, app.passthrough.Verbatim)."""

    @property
    def began(self) -> bool: ...

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class Attempts(ABC):
    """One request's attempts as an iterator of body pieces; close() it once the response is sent.

    A subclass says how to call Gemini (`_open`), wait for it (`_wait`), relay its stream
    (`_relay`) and end the body (`_broke_off`, `_give_up`).
    """

    def __init__(self, proxy: Proxy, record: RequestRecord) -> None:
        self.proxy = proxy
        self.record = record
        self.clock = KeepAlive(proxy.config.keepalive_seconds, record.started)
        # The current attempt's relay: None until its call answers; after the loop, the last's.
        self.relay: AttemptRelay | None = None
        self._pieces = self._run()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._pieces)

    def first(self) -> bytes:
        """The body's first piece (b"" for an empty one); a failure here is the client's error.

        Called before any status is sent, so an error still gets its own HTTP status; on one,
        everything is released at once.
        """
        try:
            return next(self._pieces, b"")
        except BaseException:
            self._release()
            raise

    def close(self) -> None:
        """End the request's time (the client has its last byte), then release the upstream.

        A complete answer's upstream is released only here, after the response's last byte went
        out, so reading its tail for connection reuse never delays the client.
        """
        self.record.end()
        self._release()

    def _release(self) -> None:
        try:
            self._pieces.close()
        finally:
            if self.relay is not None:
                self.relay.close()

    def _run(self) -> Iterator[bytes]:
        failures: list[UpstreamError] = []
        try:
            while (attempt := self._next_key()) is not None:
                key, remaining = attempt
                self.relay = None
                call = self._call(key, remaining)
                yield from self._wait(call, key)
                try:
                    upstream = self._answer(call, key)
                    # The call's greenlet is spent; the stream need not keep it while it lasts.
                    del call
                    self.relay = self._relay(upstream)
                    yield from self.relay
                    return
                except UpstreamError as failure:
                    if self.relay is not None and self.relay.began:
                        yield self._broke_off(key, failure)
                        return
                    failures.append(self._judge(key, failure))
                    if self.relay is not None:
                        self.relay.close()
                    if not failure.verdict.retryable:
                        break
            yield self._give_up(self._client_error(failures))
        except GeneratorExit:
            self.record.outcome, self.record.error = "client_closed", CLIENT_CLOSED
            raise
        finally:
            metrics.UPSTREAM_ATTEMPTS.observe(self.record.attempts)

    def _next_key(self) -> tuple[Key, float] | None:
        """The next key to try, with the seconds left of the request's deadline; None at
        MAX_ATTEMPTS, at FAILOVER_DEADLINE, or when no untried key is usable."""
        config, record = self.proxy.config, self.record
        remaining = record.started + config.failover_deadline - time.perf_counter()
        if record.attempts >= config.attempts_per_request or remaining <= 0:
            return None
        key = self.proxy.pool.acquire(record.keys_tried, record.model)
        if key is None:
            return None
        record.keys_tried.append(key.id)
        return key, remaining

    def _call(self, key: Key, remaining: float) -> gevent.Greenlet:
        """`_open` run in its own greenlet, which the loop may wait on or abandon."""
        start = partial(self._open, key, remaining)

        def call() -> UpstreamStream | Exception:
            # Returned, not raised: gevent prints a greenlet's exception to stderr, past the
            # logging filter that removes keys from what Gemini said.
            try:
                return start()
            except Exception as failure:  # noqa: BLE001 - handed to _answer, which raises it
                return failure

        return gevent.spawn(call)

    def _answer(self, call: gevent.Greenlet, key: Key) -> UpstreamStream:
        """The finished call's stream, counted; or its failure, counted and raised."""
        result = call.get()
        if isinstance(result, UpstreamError):
            metrics.UPSTREAM_REQUESTS.labels(key=key.id, status=result.upstream_status).inc()
            raise result
        if isinstance(result, Exception):
            self.proxy.pool.release(key)
            raise result
        metrics.UPSTREAM_REQUESTS.labels(key=key.id, status=OPENED).inc()
        self.proxy.pool.succeeded(key)
        return result

    def _abandon(self, call: gevent.Greenlet, key: Key) -> None:
        """Stop a call nobody waits for; no verdict on its key, so a probe may be lent again."""
        call.kill()
        if isinstance(call.value, UpstreamStream):
            call.value.close()
        self.proxy.pool.release(key)

    def _judge(self, key: Key, failure: UpstreamError) -> UpstreamError:
        """Penalise `key` as the failure's verdict says; return the failure as the client would
        see it (a refused key restated as the proxy's own 500 naming it)."""
        verdict, pool, model = failure.verdict, self.proxy.pool, self.record.model
        reach = pool.reach(key, verdict, model)
        seconds = pool.penalise(key, verdict, model)
        if seconds is not None:
            # The gauges change with a penalty (at once, here) or with time (metrics.watch_keys).
            metrics.publish_keys(pool, self.proxy.config.model_id)
            metrics.KEY_COOLDOWNS.labels(key=key.id, reason=verdict.kind).inc()
            log = LOGGER.warning if verdict.kind in DISABLING else LOGGER.info
            log(
                "key out of rotation",
                extra={
                    "request_id": self.record.request_id,
                    "key": key.id,
                    "reason": verdict.kind,
                    "model": EVERY_MODEL if reach is None else reach,
                    "seconds": round(seconds, 3),
                },
            )
        refused = verdict.kind in DISABLING and failure.status != 500
        return refused_key(failure, key) if refused else failure

    def _client_error(self, failures: list[UpstreamError]) -> UpstreamError:
        """The error the client gets once no further attempt will be made."""
        pool, model = self.proxy.pool, self.record.model
        if not failures and pool.counts(model)["available"]:
            # Keys were free, but the request's time was up before one could be tried.
            return UpstreamError(504, error_body(504, DEADLINE_MESSAGE), NO_CALL)
        if not failures:
            why, wait = pool.shortage(model)
            status = SHORTAGE_STATUS[why]
            error = UpstreamError(status, error_body(status, SHORTAGE_MESSAGE[why]), NO_CALL)
        else:
            # A refused key is the operator's problem; a quota or Gemini error tells the client
            # more (it can retry), so it is preferred when the attempts met both.
            usable = [f for f in failures if f.verdict.kind not in DISABLING]
            error = (usable or failures)[-1]
            wait = pool.shortage(model)[1]
        if error.verdict.retryable and not pool.counts(model)["available"]:
            error.retry_after = wait
        return error

    @abstractmethod
    def _open(self, key: Key, remaining: float) -> UpstreamStream:
        """Call Gemini with `key`, waiting at most `remaining` seconds for its first bytes."""

    @abstractmethod
    def _wait(self, call: gevent.Greenlet, key: Key) -> Iterator[bytes]:
        """Wait for the call to finish, yielding what the client may get meanwhile."""

    @abstractmethod
    def _relay(self, upstream: UpstreamStream) -> AttemptRelay:
        """This attempt's relay of `upstream` to the client."""

    @abstractmethod
    def _broke_off(self, key: Key, failure: UpstreamError) -> bytes:
        """The body's last piece after `failure`, once the body began."""

    @abstractmethod
    def _give_up(self, error: UpstreamError) -> bytes:
        """The body's last piece when no attempt is left; raises `error` while nothing was sent."""


class Generation(Attempts):
    """/generate's body: Gemini's stream re-sent as token-count chunks in the client's framing.

    Every failure once a byte went out, a keep-alive space included, ends the body with an
    error element (`_end`), so the body always parses.
    """

    relay: Relay | None

    def __init__(
        self,
        proxy: Proxy,
        model: str,
        body: bytes,
        record: RequestRecord,
        framing: Framing = ARRAY,
        content: Content = "cumulative",
    ) -> None:
        self.model = model
        self.body = body
        self.framing = framing
        self.content = content
        super().__init__(proxy, record)

    def _run(self) -> Iterator[bytes]:
        try:
            yield from super()._run()
        except Exception:
            if not self.clock.began:
                raise
            # A bug, not Gemini, after the 200 was committed: logged with its traceback, and
            # the body still ended as JSON.
            LOGGER.exception("stream failed", extra={"request_id": self.record.request_id})
            yield self._end(UpstreamError(500, error_body(500, INTERNAL), "internal"))
        finally:
            if self.relay is not None:
                chunker = self.relay.chunker
                self.record.chunks = chunker.chunks_sent
                self.record.prompt_tokens = chunker.prompt_tokens
                self.record.total_tokens = chunker.total_tokens

    def _open(self, key: Key, remaining: float) -> UpstreamStream:
        return self.proxy.client.open_stream(self.model, self.body, key, remaining)

    def _wait(self, call: gevent.Greenlet, key: Key) -> Iterator[bytes]:
        try:
            while not call.ready():
                call.join(self.clock.wait())
                if not call.ready() and self.clock.due():
                    self.clock.sent()
                    yield self.framing.keepalive
        except BaseException:  # the client left, or the worker is stopping
            self._abandon(call, key)
            raise

    def _relay(self, upstream: UpstreamStream) -> Relay:
        chunker = Chunker(self.proxy.config.chunk_token, self.content)
        return Relay(upstream, chunker, self.record, self.framing, self.clock)

    def _broke_off(self, key: Key, failure: UpstreamError) -> bytes:
        return self._end(self._judge(key, failure))

    def _give_up(self, error: UpstreamError) -> bytes:
        if not self.clock.began:
            raise error
        return self._end(error)

    def _end(self, failure: UpstreamError) -> bytes:
        """The body's error ending, after chunks or after keep-alives only."""
        chunks = 0 if self.relay is None else self.relay.chunker.chunks_sent
        secrets = self.proxy.config.api_keys
        return end_with_error(failure, chunks, self.record, self.framing, secrets)
