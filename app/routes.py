"""The proxy's own views: POST /generate, GET /health, /health/ready and /metrics.

A /generate request, top to bottom: password, model, output options, body, then the attempt loop
(app.failover.Generation) run up to its first piece before any status is sent, then streamed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any, cast

from flask import Blueprint, Response, g, request

from . import metrics
from .auth import require_password
from .bodies import check_body, read_body
from .chunker import CONTENTS, Content
from .errors import JSON, ApiError, set_retry_after
from .failover import Generation
from .formats import Framing, choose
from .keys import KeyPool
from .paths import GENERATE_PATH
from .proxy import get_proxy
from .schemas import validate_generate_request, validate_model

bp = Blueprint("proxy", __name__)
STREAM_HEADERS = {"X-Accel-Buffering": "no", "Cache-Control": "no-store"}


# No automatic OPTIONS: /generate answers POST only, and anything else gets the JSON 405.
@bp.post(GENERATE_PATH, provide_automatic_options=False)
def generate() -> Response:
    """Relay one generation from Gemini as a stream of token-count chunks."""
    require_password()
    proxy, record = get_proxy(), g.record
    requested = request.args.get("model")
    model = proxy.config.model_id if requested is None else validate_model(requested)
    framing, content = _output(request.args.get("format"), request.args.get("content"))
    raw = read_body()
    check_body(validate_generate_request, raw)

    record.model = model
    answer = Generation(proxy, model, raw, record, framing, content)
    first = answer.first()  # failures up to here still get their own HTTP status
    response = Response(itertools.chain([first], answer), mimetype=framing.media_type)
    response.headers.update(STREAM_HEADERS)
    # Closed when the response is, whatever happened: a client that left mid-stream included.
    response.call_on_close(answer.close)
    return response


def _output(format_name: str | None, content: str | None) -> tuple[Framing, Content]:
    """The body's framing (?format=, else Accept) and what a chunk's content holds."""
    try:
        framing = choose(format_name, request.headers.get("Accept"))
    except ValueError as error:
        raise ApiError(400, str(error)) from None
    if content is None:
        return framing, "cumulative"
    if content not in CONTENTS:
        raise ApiError(400, f"content must be cumulative or delta, not {content!r}")
    return framing, cast(Content, content)


@bp.get("/health")
def health() -> dict[str, Any]:
    """Liveness: the process serves; key counts by state for MODEL_ID as this worker sees them,
    and what each key is out for (by key id and model)."""
    proxy = get_proxy()
    model, pool = proxy.config.model_id, proxy.pool
    return {"status": "ok", "model": model, "keys": pool.counts(model), "out": _out(pool)}


@bp.get("/health/ready")
def ready() -> Response:
    """Readiness: 503 while this worker has no key usable for MODEL_ID, so a balancer can route
    around it."""
    proxy = get_proxy()
    model, pool = proxy.config.model_id, proxy.pool
    counts = pool.counts(model)
    body = {"keys": counts, "out": _out(pool)}
    if counts["available"]:
        return Response(json.dumps({"status": "ready", **body}), mimetype=JSON)
    response = Response(json.dumps({"status": "unavailable", **body}), 503, mimetype=JSON)
    set_retry_after(response, pool.shortage(model)[1])
    return response


def _out(pool: KeyPool) -> list[dict[str, Any]]:
    return [dataclasses.asdict(outage) for outage in pool.outages()]


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    """Prometheus exposition, summed over all gunicorn workers."""
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)
