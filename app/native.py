"""Gemini's own REST paths under /v1 and /v1beta, passed through with a key from the pool, so
Google's SDKs work as they are.

Usage: point a Gemini client at the proxy as its base URL, with the proxy's password as its
API key; google-genai's default API version (v1) and api_version="v1beta" both work::

    genai.Client(api_key=PASSWORD, http_options=types.HttpOptions(base_url="http://proxy:1231"))

Each version's path goes to the same version upstream. The client's key (in any place
app.auth accepts) is checked as the proxy's password and never forwarded; a pool key goes
upstream instead, chosen, cooled down and failed over as for /generate until Gemini's answer
begins (app.passthrough). The answer is passed on unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from flask import Blueprint, Response, g, request

from .auth import require_password
from .bodies import check_body, read_body
from .errors import ApiError
from .passthrough import pass_through
from .paths import API_VERSIONS
from .schemas import (
    validate_batch_embed_request,
    validate_embed_request,
    validate_generate_request,
    validate_model,
)

# One blueprint for every version: the version is part of the path, and goes upstream as it came.
bp = Blueprint("native", __name__, url_prefix=f"/<any({', '.join(API_VERSIONS)}):version>")
# Every path first checks the proxy's password.
bp.before_request(require_password)
# The model methods served, each with the check its body passes before it may reach Gemini.
METHODS: dict[str, Callable[[bytes], None]] = {
    "generateContent": validate_generate_request,
    "streamGenerateContent": validate_generate_request,
    "countTokens": validate_generate_request,
    "embedContent": validate_embed_request,
    "batchEmbedContents": validate_batch_embed_request,
}
# The query parameters Gemini's answer depends on; the rest (the client's ?key= first of all)
# stays with the proxy.
FORWARDED_QUERY = frozenset({"alt", "pageSize", "pageToken"})


@bp.get("/models")
def list_models(version: str) -> Response:
    return _pass(version, "GET", "/models")


@bp.get("/models/<model>")
def get_model(version: str, model: str) -> Response:
    return _pass(version, "GET", f"/models/{validate_model(model)}")


# Registered without automatic OPTIONS, like /generate: a native path answers POST only.
@bp.post("/models/<model>:<method>", provide_automatic_options=False)
def model_method(version: str, model: str, method: str) -> Response:
    """generateContent, streamGenerateContent (SSE or Gemini's JSON array), countTokens,
    embedContent and batchEmbedContents."""
    model = validate_model(model)
    validate = METHODS.get(method)
    if validate is None:
        raise ApiError(404, f"unknown method {method!r}: {', '.join(sorted(METHODS))}")
    raw = read_body()
    check_body(validate, raw)
    g.record.model = model
    return _pass(version, "POST", f"/models/{model}:{method}", raw)


def _pass(version: str, method: str, path: str, body: bytes | None = None) -> Response:
    query = urlencode([(k, v) for k, v in request.args.items(multi=True) if k in FORWARDED_QUERY])
    return pass_through(method, f"/{version}{path}" + (f"?{query}" if query else ""), body)
