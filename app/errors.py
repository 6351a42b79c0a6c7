"""The JSON errors the proxy answers with, Gemini's own included, and their Flask handlers.

Every error body is Gemini-shaped, so clients parse one format whichever side failed::

    {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "..."}}

On Gemini's OpenAI-compatible routes (/v1beta/openai/) the proxy's own errors are in OpenAI's
shape instead, so OpenAI SDKs surface their message; Gemini's own errors there go back as
Gemini sent them (a one-element list)::

    {"error": {"message": "...", "type": "invalid_request_error", "code": "invalid_argument"}}

Usage::

    errors.init_app(app)  # every error of `app`, Flask's own 404 and 405 included, as JSON
    ...
    raise ApiError(400, "`contents` must be a non-empty list")
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, NotFound

from .classify import UPSTREAM_FAULT, Verdict
from .paths import OPENAI_PREFIX, SERVED_PREFIXES
from .proxy import get_proxy
from .redact import redact_json

# app.logs' logger, by its name: app.logs imports app.upstream, which imports this module.
LOGGER = logging.getLogger("gemini_proxy")
JSON = "application/json"

# Google's canonical status names for the HTTP codes the proxy itself produces.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "BAD_GATEWAY",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# OpenAI's error types, by the HTTP code of an error the proxy makes; anything else is a 4xx
# the request caused.
OPENAI_TYPES = {
    401: "authentication_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "server_error",
}
OPENAI_REQUEST_ERROR = "invalid_request_error"
NOT_FOUND_MESSAGE = (
    "no such path; the proxy serves POST /generate, Gemini's REST API under /v1beta/ and /v1/ "
    f"(e.g. /v1beta/models), and Gemini's OpenAI-compatible API under {OPENAI_PREFIX}/"
)


class ApiError(Exception):
    """An error answered to the client as JSON with its HTTP status."""

    def __init__(self, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, **self.extra)


class UpstreamError(Exception):
    """A failed call to Gemini: refused, unreachable, or its stream broken or carrying an error."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        upstream_status: str,
        verdict: Verdict = UPSTREAM_FAULT,
    ) -> None:
        super().__init__(body["error"].get("message", ""))
        self.status = status
        self.body = body
        # What failed, in a word: Gemini's HTTP status or "timeout" / "unreachable" (the labels of
        # the upstream metric, for calls that got no stream), or how a stream failed.
        self.upstream_status = upstream_status
        # What the failure says about the key that was used (see app.classify).
        self.verdict = verdict
        # Seconds for the client's Retry-After header, when a retry later can succeed.
        self.retry_after: float | None = None

    @property
    def from_gemini(self) -> bool:
        """Whether this is Gemini's own answer to the request, not one the proxy made (no key
        left, a refused pool key, an unreachable or cut Gemini)."""
        return self.upstream_status == str(self.status)


def error_body(code: int, message: str, **extra: Any) -> dict[str, Any]:
    """A Gemini-shaped error object for `code`."""
    status = STATUS_NAMES.get(code, "UNKNOWN")
    return {"error": {"code": code, "status": status, "message": message, **extra}}


def parse_gemini_error(status_code: int, raw: bytes) -> dict[str, Any]:
    """Gemini's error body as `{"error": {...}}`, whatever shape it arrived in."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        body = None
    # Without `alt=sse` Gemini wraps errors in a one-element array; accept that too.
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body
    return error_body(status_code, f"Gemini answered HTTP {status_code} without a JSON error body")


def init_app(app: Flask) -> None:
    """Answer every error of `app` as Gemini-shaped JSON, with no key in it."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(UpstreamError, _upstream_error)
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(Exception, _unexpected)


def set_retry_after(response: Response, seconds: float) -> None:
    response.headers["Retry-After"] = str(max(1, math.ceil(seconds)))


def _api_error(error: ApiError) -> Response:
    return _json_error(error.code, error.body())


def openai_error_body(code: int, message: str) -> dict[str, Any]:
    """An OpenAI-shaped error object for `code`, as OpenAI SDKs read it."""
    kind = OPENAI_TYPES.get(code, OPENAI_REQUEST_ERROR)
    status = STATUS_NAMES.get(code, "UNKNOWN").lower()
    return {"error": {"message": message, "type": kind, "code": status, "param": None}}


def _upstream_error(error: UpstreamError) -> Response:
    gemini_wraps = error.from_gemini and _on_openai_path()
    # On the OpenAI path Gemini wraps its error in a list; it goes back in the shape it came.
    response = _json_error(error.status, error.body, wrapped=gemini_wraps)
    if error.retry_after is not None:
        set_retry_after(response, error.retry_after)
    return response


def _http_exception(error: HTTPException) -> Response:
    code = error.code or 500
    if isinstance(error, NotFound):
        body = error_body(404, NOT_FOUND_MESSAGE, served=list(SERVED_PREFIXES))
    else:
        body = error_body(code, error.description or error.name)
    response = _json_error(code, body)
    allow = dict(error.get_headers()).get("Allow")
    if allow:
        response.headers["Allow"] = allow
    return response


def _unexpected(error: Exception) -> Response:
    record = g.get("record")
    LOGGER.exception("unhandled error", extra={"request_id": record and record.request_id})
    return _json_error(500, error_body(500, "internal error; see the proxy's log"))


def _on_openai_path() -> bool:
    return request.path.startswith(OPENAI_PREFIX + "/")


def _json_error(code: int, body: dict[str, Any], wrapped: bool = False) -> Response:
    record = g.get("record")
    if record is not None:
        record.error = body["error"].get("status", "UNKNOWN")
    shaped: Any = body
    if wrapped:
        shaped = [body]
    elif _on_openai_path():
        shaped = openai_error_body(code, body["error"]["message"])
    text = json.dumps(redact_json(shaped, get_proxy().config.api_keys), ensure_ascii=False)
    return Response(text, status=code, mimetype=JSON)
