"""The JSON error shape the proxy answers with, and reading the one Gemini sends.

Every error body is Gemini-shaped, so clients parse one format whichever side failed::

    {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "..."}}

Usage::

    raise ApiError(400, "`contents` must be a non-empty list")
"""

from __future__ import annotations

import json
from typing import Any

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
        """The JSON body for this error."""
        return error_body(self.code, self.message, **self.extra)


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
