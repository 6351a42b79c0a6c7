"""The clients' password: where it may be given, and a constant-time check.

Usage::

    if not password_matches(request, config.api_password):
        raise ApiError(401, "...")
"""

from __future__ import annotations

import hmac

from flask import Request

BEARER = "bearer "


def presented_password(
    request: Request, header: str = "x-api-key", query: str = "password"
) -> bytes | None:
    """The password the client sent, as bytes: a Bearer token, the `header` or the `query`.

    /generate takes `x-api-key` and `?password=`; the native Gemini routes take the places
    Gemini clients put their key, `x-goog-api-key` and `?key=`.
    """
    # WSGI hands header values over decoded as latin-1 and the query string as UTF-8; going back
    # to the bytes the client sent makes a non-ASCII password work the same in all three places.
    authorization = request.headers.get("Authorization", "")
    if authorization[: len(BEARER)].lower() == BEARER:
        return authorization[len(BEARER) :].strip().encode("latin-1")
    in_header = request.headers.get(header)
    if in_header:
        return in_header.encode("latin-1")
    in_query = request.args.get(query)
    return None if in_query is None else in_query.encode()


def password_matches(
    request: Request, password: str, header: str = "x-api-key", query: str = "password"
) -> bool:
    """Whether the request carries `password`, compared in constant time."""
    given = presented_password(request, header, query)
    # compare_digest's time depends only on the length of its inputs, never on where they differ.
    return given is not None and hmac.compare_digest(given, password.encode())
