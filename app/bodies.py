"""Reading a request's body whole, within the app's size limit, for every route that takes one.

Usage::

    raw = read_body()  # bytes; raises 413 over MAX_CONTENT_LENGTH, ApiError(400) if malformed
"""

from __future__ import annotations

from flask import current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .errors import ApiError


def read_body() -> bytes:
    """The current request's body, refused when over the limit or malformed."""
    try:
        raw = request.get_data(cache=False)
        # werkzeug cuts a body without Content-Length (chunked) at MAX_CONTENT_LENGTH without an
        # error; one more byte behind the limit means it was longer than allowed.
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        if len(raw) == limit and request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    except HTTPException:
        raise
    except Exception:  # noqa: BLE001 - each WSGI server raises its own type for a bad chunked body
        raise ApiError(400, "request body could not be read (malformed chunked encoding)") from None
    return raw
