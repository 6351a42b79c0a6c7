"""The clients' password: where it may be given, and a constant-time check.

Usage::

    if not password_matches(request, config.api_password):
        raise ApiError(401, "...")
"""

from __future__ import annotations

import hmac

from flask import Request

BEARER = "bearer "


def presented_password(request: Request) -> str | None:
    """The password the client sent: Bearer token, `x-api-key` header or `?password=`."""
    authorization = request.headers.get("Authorization", "")
    if authorization[: len(BEARER)].lower() == BEARER:
        return authorization[len(BEARER) :].strip()
    return request.headers.get("x-api-key") or request.args.get("password")


def password_matches(request: Request, password: str) -> bool:
    """Whether the request carries `password`, compared in constant time."""
    given = presented_password(request)
    # compare_digest's time depends only on the length of its inputs, never on where they differ.
    return given is not None and hmac.compare_digest(given.encode(), password.encode())
