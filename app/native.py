"""Gemini's own REST paths, passed through with a key from the pool, so Google's SDK works as is.

Usage: point a Gemini client at the proxy as its base URL, with the proxy's password as its
API key::

    genai.Client(api_key=PASSWORD, http_options=types.HttpOptions(base_url="http://proxy:1231"))

The client's key (its `x-goog-api-key`, `?key=` or Bearer token) is checked as the proxy's
password and never forwarded; a pool key goes upstream instead, chosen, cooled down and failed
over as for /generate until Gemini's answer begins. The answer is passed on unchanged: status,
content type, and body byte for byte as it arrives.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Iterator
from urllib.parse import urlencode

import gevent
import requests
from flask import Blueprint, Response, g, request

from .auth import password_matches
from .bodies import read_body
from .errors import ApiError, UpstreamError
from .failover import Attempts
from .keys import Key
from .logs import LOGGER, RequestRecord
from .proxy import Proxy, get_proxy
from .relay import KeepAlive
from .schemas import validate_generate_request, validate_model
from .upstream import API_PREFIX, UpstreamStream

PREFIX = API_PREFIX
bp = Blueprint("native", __name__, url_prefix=PREFIX)
GENERATION_METHODS = frozenset({"generateContent", "streamGenerateContent", "countTokens"})
# The query parameters Gemini's answer depends on; the rest (the client's ?key= first of all)
# stays with the proxy.
FORWARDED_QUERY = frozenset({"alt", "pageSize", "pageToken"})
# Headers of Gemini's answer worth passing on; the rest describe Google's hop, not this one.
FORWARDED_HEADERS = ("Content-Type",)
UNAUTHORIZED = "API key not valid: use the proxy's password (x-goog-api-key, ?key= or Bearer)"


@bp.get("/models")
def list_models() -> Response:
    return _pass("GET", "/models")


@bp.get("/models/<model>")
def get_model(model: str) -> Response:
    return _pass("GET", f"/models/{validate_model(model)}")


# Registered without automatic OPTIONS, like /generate: a native path answers POST only.
@bp.post("/models/<model>:<method>", provide_automatic_options=False)
def model_method(model: str, method: str) -> Response:
    """generateContent, streamGenerateContent (SSE or Gemini's JSON array) and countTokens."""
    model = validate_model(model)
    if method not in GENERATION_METHODS:
        raise ApiError(404, f"unknown method {method!r}: {', '.join(sorted(GENERATION_METHODS))}")
    raw = read_body()
    validate_generate_request(raw)
    g.record.model = model
    return _pass("POST", f"/models/{model}:{method}", raw)


@bp.before_request
def _authorize() -> None:
    """Every native path first checks the proxy's password, in the places Gemini keys go."""
    password = get_proxy().config.api_password
    if not password_matches(request, password, header="x-goog-api-key", query="key"):
        raise ApiError(401, UNAUTHORIZED)


def _pass(method: str, path: str, body: bytes | None = None) -> Response:
    """Gemini's answer to the same call, made with a pool key, streamed back unchanged."""
    query = urlencode([(k, v) for k, v in request.args.items(multi=True) if k in FORWARDED_QUERY])
    target = PREFIX + path + (f"?{query}" if query else "")
    answer = PassThrough(get_proxy(), method, target, body, g.record)
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
        self, proxy: Proxy, method: str, path: str, body: bytes | None, record: RequestRecord
    ) -> None:
        self.method = method
        self.path = path
        self.body = body
        super().__init__(proxy, record)

    @property
    def response(self) -> requests.Response:
        """Gemini's answer (status and headers) of the attempt being passed on."""
        return self.relay.upstream.response

    def _open(self, key: Key, remaining: float) -> UpstreamStream:
        return self.proxy.client.open(self.method, self.path, key, self.body, remaining)

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
            "native stream broke off",
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
