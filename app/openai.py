"""Gemini's OpenAI-compatible API (/v1beta/openai/), passed through with a key from the pool, so
the openai SDKs, and the applications built on them, work as they are.

Usage: point an OpenAI client at the proxy, with the proxy's password as its API key::

    OpenAI(base_url="http://proxy:1231/v1beta/openai/", api_key=PASSWORD)

The client's Bearer token (or any place app.auth accepts) is checked as the proxy's password and
never forwarded; a pool key goes upstream as `Authorization: Bearer`, chosen, cooled down and
failed over as for /generate until Gemini's answer begins (app.passthrough). Gemini's answers and
errors pass through unchanged; the proxy's own errors here are OpenAI-shaped (app.errors).
"""

from __future__ import annotations

from flask import Blueprint, Response, g

from .auth import require_password
from .bodies import check_body, read_body
from .passthrough import pass_through
from .paths import OPENAI_PREFIX
from .schemas import OpenAIEndpoint, validate_model, validate_openai_request

bp = Blueprint("openai", __name__, url_prefix=OPENAI_PREFIX)
# Every path first checks the proxy's password.
bp.before_request(require_password)


# Registered without automatic OPTIONS, like /generate: these paths answer POST only.
@bp.post("/chat/completions", provide_automatic_options=False)
def chat_completions() -> Response:
    """A chat completion, streamed (SSE ending in `data: [DONE]`) or whole, as Gemini sends it."""
    return _post("/chat/completions", "chat")


@bp.post("/embeddings", provide_automatic_options=False)
def embeddings() -> Response:
    return _post("/embeddings", "embeddings")


@bp.get("/models")
def list_models() -> Response:
    return pass_through("GET", OPENAI_PREFIX + "/models", key_place="bearer")


@bp.get("/models/<model>")
def get_model(model: str) -> Response:
    target = f"{OPENAI_PREFIX}/models/{validate_model(model)}"
    return pass_through("GET", target, key_place="bearer")


def _post(path: str, endpoint: OpenAIEndpoint) -> Response:
    raw = read_body()
    # The body's model is the one a cooldown is about (and the log's model).
    g.record.model = check_body(validate_openai_request, raw, endpoint)
    return pass_through("POST", OPENAI_PREFIX + path, raw, key_place="bearer")
