"""The clients' password: where it may be given, and a constant-time check.

Usage::

    if not password_matches(request, config.api_password):
        raise ApiError(401, "...")
"""

from __future__ import annotations

import hmac

from flask import Request

BEARER = "bearer "


def presented_passwords(
    request: Request, header: str = "x-api-key", query: str = "password"
) -> list[bytes]:
    """The passwords the client sent, as bytes: a Bearer token, the `header`, the `query`.

    /generate takes `x-api-key` and `?password=`; the native Gemini routes take the places
    Gemini clients put their key, `x-goog-api-key` and `?key=`.
    """
    # WSGI hands header values over decoded as latin-1 and the query string as UTF-8; going back
    # to the bytes the client sent makes a non-ASCII password work the same in all three places.
    given = []
    authorization = request.headers.get("Authorization", "")
    if authorization[: len(BEARER)].lower() == BEARER:
        given.append(authorization[len(BEARER) :].strip().encode("latin-1"))
    in_header = request.headers.get(header)
    if in_header:
        given.append(in_header.encode("latin-1"))
    in_query = request.args.get(query)
    if in_query is not None:
        given.append(in_query.encode())
    return given


def password_matches(
    request: Request, password: str, header: str = "x-api-key", query: str = "password"
) -> bool:
    """Whether any place the password may be given holds it, compared in constant time."""
    expected = password.encode()
    # compare_digest's time depends only on the length of its inputs, never on where they differ.
    matches = [
        hmac.compare_digest(given, expected)
        for given in presented_passwords(request, header, query)
    ]
    return any(matches)
