"""Reading a request's body whole, within the app's size limit, and checking it, for every route
that takes one.

Usage::

    raw = read_body()  # bytes; raises 413 over MAX_CONTENT_LENGTH, ApiError(400) if malformed
    check_body(validate_generate_request, raw)  # what the check returns, or the ApiError it raises
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from flask import current_app, request
from greenlet import greenlet
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .errors import ApiError

P = ParamSpec("P")
T = TypeVar("T")


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


def check_body(
    check: Callable[Concatenate[bytes, P], T], raw: bytes, *args: P.args, **kwargs: P.kwargs
) -> T:
    """`check(raw, ...)` run at once in a greenlet of its own: its result, or what it raises.

    The check must not block (it would leave the request's greenlet mid-switch) and sees no
    request context (a greenlet starts with context variables of its own): the schemas'
    validators are pure code.
    """
    # Python 3.11 gives each greenlet its own stack of Python frames, and the memory pages that
    # marshmallow's deep calls touch would stay with the request's greenlet for as long as its
    # stream lasts: 3.6 KB a stream (BENCHMARKS.md). This greenlet gives them back as it ends.
    return greenlet(check).switch(raw, *args, **kwargs)
