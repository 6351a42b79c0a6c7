"""Gemini's answer to one call passed on as it is, with a pool key, for every route that does not
re-chunk: Gemini's native paths (app.native) and its OpenAI-compatible API (app.openai).

Usage::

    return pass_through("POST", "/v1/models/gemini-2.5-flash:generateContent", raw)

The key is chosen, cooled down and failed over as for /generate until Gemini's answer begins;
then status, content type and body go out byte for byte as they arrive.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Iterator

import gevent
import requests
from flask import Response, g

from .errors import UpstreamError
from .failover import Attempts
from .keys import Key
from .logs import LOGGER, RequestRecord
from .proxy import Proxy, get_proxy
from .relay import KeepAlive
from .upstream import KeyPlace, UpstreamStream

# Headers of Gemini's answer worth passing on; the rest describe Google's hop, not this one.
FORWARDED_HEADERS = ("Content-Type",)


def pass_through(
    method: str, target: str, body: bytes | None = None, key_place: KeyPlace = "x-goog-api-key"
) -> Response:
    """Gemini's answer to `method target` (query included), made with a pool key, unchanged."""
    answer = PassThrough(get_proxy(), method, target, body, g.record, key_place)
    first = answer.first()
    upstream = answer.response
    response = Response(itertools.chain([first], answer), status=upstream.status_code)
    for name in FORWARDED_HEADERS:
        if name in upstream.headers:
            response.headers[name] = upstream.headers[name]
    response.headers["X-Accel-Buffering"] = "no"
    response.call_on_close(answer.close)
    return response


class PassThrough(Attempts):
    """Gemini's answer to one call, passed on as it is, with /generate's key choice and failover.

    Nothing can be retried once its first byte has gone out; until then (headers and a silence
    or a cut included) the next key is tried.
    """

    relay: Verbatim | None

    def __init__(
        self,
        proxy: Proxy,
        method: str,
        path: str,
        body: bytes | None,
        record: RequestRecord,
        key_place: KeyPlace = "x-goog-api-key",
    ) -> None:
        self.method = method
        self.path = path
        self.body = body
        self.key_place = key_place
        super().__init__(proxy, record)

    @property
    def response(self) -> requests.Response:
        """Gemini's answer (status and headers) of the attempt being passed on."""
        return self.relay.upstream.response

    def _open(self, key: Key, remaining: float) -> UpstreamStream:
        return self.proxy.client.open(
            self.method, self.path, key, self.body, remaining, key_place=self.key_place
        )

    def _wait(self, call: gevent.Greenlet, key: Key) -> Iterator[bytes]:
        # Nothing may be added to Gemini's bytes, so nothing goes out meanwhile.
        call.join()
        return iter(())

    def _relay(self, upstream: UpstreamStream) -> Verbatim:
        return Verbatim(upstream, self.record, self.clock)

    def _broke_off(self, key: Key, failure: UpstreamError) -> bytes:
        record = self.record
        record.outcome, record.error = "upstream_error", failure.body["error"].get("status")
        LOGGER.warning(
            "passed-through stream broke off",
            extra={"request_id": record.request_id, "error": str(failure)},
        )
        # What gunicorn takes for a vanished peer: the client's connection is closed without
        # the body's end, as Gemini's would be, and no traceback is logged for Gemini's failure.
        raise ConnectionResetError(errno.ECONNRESET, "Gemini's stream broke off") from None

    def _give_up(self, error: UpstreamError) -> bytes:
        raise error


class Verbatim:
    """One attempt's Gemini answer as it arrives, byte for byte; close() releases it."""

    def __init__(self, upstream: UpstreamStream, record: RequestRecord, clock: KeepAlive) -> None:
        self.upstream = upstream
        self.record = record
        self.clock = clock

    @property
    def began(self) -> bool:
        """Whether a byte went out: from then on nothing can be retried."""
        return self.clock.began

    def __iter__(self) -> Iterator[bytes]:
        for data in self.upstream.iter_bytes():
            if data is not None:  # a silence: nothing to add to a body passed on unchanged
                self.clock.sent()
                yield data
        self.record.outcome = "complete"

    def close(self) -> None:
        """Release the upstream; a complete answer's connection goes back to the pool."""
        self.upstream.close(reuse=self.record.outcome == "complete")
