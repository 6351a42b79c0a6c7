"""The clients' password: where it may be given, and a constant-time check.

Usage::

    if not password_matches(request, config.api_password):
        raise ApiError(401, "...")
"""

from __future__ import annotations

import hmac

from flask import Request

BEARER = "bearer "


def presented_password(request: Request) -> bytes | None:
    """The password the client sent, as bytes: Bearer token, `x-api-key` or `?password=`."""
    # WSGI hands header values over decoded as latin-1 and the query string as UTF-8; going back
    # to the bytes the client sent makes a non-ASCII password work the same in all three places.
    authorization = request.headers.get("Authorization", "")
    if authorization[: len(BEARER)].lower() == BEARER:
        return authorization[len(BEARER) :].strip().encode("latin-1")
    header = request.headers.get("x-api-key")
    if header:
        return header.encode("latin-1")
    query = request.args.get("password")
    return None if query is None else query.encode()


def password_matches(request: Request, password: str) -> bool:
    """Whether the request carries `password`, compared in constant time."""
    given = presented_password(request)
    # compare_digest's time depends only on the length of its inputs, never on where they differ.
    return given is not None and hmac.compare_digest(given, password.encode())
