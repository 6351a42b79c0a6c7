"""The clients' password: the one set of places it may be given on every route, checked in
constant time.

Usage::

    bp.before_request(require_password)   # every route of a blueprint
    require_password()                    # first thing in a view
"""

from __future__ import annotations

import hmac

from flask import Request, request

from .errors import ApiError
from .proxy import get_proxy

BEARER = "bearer "
# Every client library puts its key in one of these: curl users and OpenAI SDKs the Bearer token,
# Gemini's SDKs x-goog-api-key or ?key=, Anthropic-style clients x-api-key. One rule for every
# route, so a client works wherever it is pointed.
PASSWORD_HEADERS = ("x-api-key", "x-goog-api-key")
PASSWORD_QUERIES = ("password", "key")
UNAUTHORIZED = (
    "missing or wrong password (Authorization: Bearer, x-api-key, x-goog-api-key, "
    "?password= or ?key=)"
)


def presented_passwords(request: Request) -> list[bytes]:
    """The passwords the client sent, as bytes: Bearer token, PASSWORD_HEADERS, PASSWORD_QUERIES."""
    # WSGI hands header values over decoded as latin-1 and the query string as UTF-8; going back
    # to the bytes the client sent makes a non-ASCII password work the same in every place.
    given = []
    authorization = request.headers.get("Authorization", "")
    if authorization[: len(BEARER)].lower() == BEARER:
        given.append(authorization[len(BEARER) :].strip().encode("latin-1"))
    given.extend(
        request.headers[name].encode("latin-1")
        for name in PASSWORD_HEADERS
        if request.headers.get(name)
    )
    given.extend(request.args[name].encode() for name in PASSWORD_QUERIES if name in request.args)
    return given


def password_matches(request: Request, password: str) -> bool:
    """Whether any place the password may be given holds it, compared in constant time."""
    expected = password.encode()
    # compare_digest's time depends only on the length of its inputs, never on where they differ.
    matches = [hmac.compare_digest(given, expected) for given in presented_passwords(request)]
    return any(matches)


def require_password() -> None:
    """Refuse the request being served with ApiError(401) unless it carries the password."""
    if not password_matches(request, get_proxy().config.api_password):
        raise ApiError(401, UNAUTHORIZED)
