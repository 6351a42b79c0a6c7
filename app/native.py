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
from collections.abc import Iterator
from functools import partial
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, request

from .auth import password_matches
from .bodies import read_body
from .errors import ApiError
from .logs import CLIENT_CLOSED, LOGGER, RequestRecord
from .schemas import validate_generate_request, validate_model
from .upstream import API_PREFIX, UpstreamError, UpstreamStream

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
    """Gemini's model list."""
    return _pass("GET", "/models")


@bp.get("/models/<model>")
def get_model(model: str) -> Response:
    """One model's description."""
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
    config = current_app.extensions["gemini_proxy"].config
    if not password_matches(request, config.api_password, header="x-goog-api-key", query="key"):
        raise ApiError(401, UNAUTHORIZED)


def _pass(method: str, path: str, body: bytes | None = None) -> Response:
    """Gemini's answer to the same call, made with a pool key, streamed back unchanged."""
    record: RequestRecord = g.record
    query = urlencode([(k, v) for k, v in request.args.items(multi=True) if k in FORWARDED_QUERY])
    target = PREFIX + path + (f"?{query}" if query else "")
    failover = current_app.extensions["gemini_proxy"]
    upstream, first = failover.passthrough(method, target, body, record)
    answer = upstream.response
    response = Response(_relay(upstream, first, record), status=answer.status_code)
    for name in FORWARDED_HEADERS:
        if name in answer.headers:
            response.headers[name] = answer.headers[name]
    response.headers["X-Accel-Buffering"] = "no"
    response.call_on_close(partial(_close, upstream, record))
    return response


def _relay(upstream: UpstreamStream, first: bytes, record: RequestRecord) -> Iterator[bytes]:
    """Gemini's body as it arrives; if it breaks, the connection is cut, as Gemini's would be."""
    try:
        yield first
        for data in upstream.iter_bytes():
            if data is not None:  # a silence: nothing to add to a body passed on unchanged
                yield data
        record.outcome = "complete"
    except UpstreamError as failure:
        record.outcome, record.error = "upstream_error", failure.body["error"].get("status")
        LOGGER.warning(
            "native stream broke off",
            extra={"request_id": record.request_id, "error": str(failure)},
        )
        # What gunicorn takes for a vanished peer: the client's connection is closed without
        # the body's end, and no traceback is logged for a failure that is Gemini's.
        raise ConnectionResetError(errno.ECONNRESET, "Gemini's stream broke off") from None
    except GeneratorExit:
        record.outcome, record.error = "client_closed", CLIENT_CLOSED
        raise


def _close(upstream: UpstreamStream, record: RequestRecord) -> None:
    record.end()
    upstream.close(reuse=record.outcome == "complete")
