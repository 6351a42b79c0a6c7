"""The JSON errors the proxy answers with, Gemini's own included, and their Flask handlers.

Every error body is Gemini-shaped, so clients parse one format whichever side failed::

    {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "..."}}

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

from flask import Flask, Response, g
from werkzeug.exceptions import HTTPException

from .classify import UPSTREAM_FAULT, Verdict
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


def _upstream_error(error: UpstreamError) -> Response:
    response = _json_error(error.status, error.body)
    if error.retry_after is not None:
        set_retry_after(response, error.retry_after)
    return response


def _http_exception(error: HTTPException) -> Response:
    code = error.code or 500
    response = _json_error(code, error_body(code, error.description or error.name))
    allow = dict(error.get_headers()).get("Allow")
    if allow:
        response.headers["Allow"] = allow
    return response


def _unexpected(error: Exception) -> Response:
    record = g.get("record")
    LOGGER.exception("unhandled error", extra={"request_id": record and record.request_id})
    return _json_error(500, error_body(500, "internal error; see the proxy's log"))


def _json_error(code: int, body: dict[str, Any]) -> Response:
    record = g.get("record")
    if record is not None:
        record.error = body["error"].get("status", "UNKNOWN")
    text = json.dumps(redact_json(body, get_proxy().config.api_keys), ensure_ascii=False)
    return Response(text, status=code, mimetype=JSON)
