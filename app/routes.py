"""The HTTP surface: POST /generate, GET /health and GET /metrics, and JSON errors for all.

A /generate request, top to bottom: password, model, body, key, upstream call, then the relay
primed up to its first chunk before any status is sent, then streamed.
"""

from __future__ import annotations

import itertools
import json
import math
from functools import partial
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from . import metrics, native
from .auth import password_matches
from .bodies import read_body
from .errors import ApiError, error_body
from .failover import Failover, Generation
from .formats import Framing, choose
from .logs import LOGGER, RequestRecord, Route, log_request, request_id_from
from .redact import redact_json
from .schemas import validate_generate_request, validate_model
from .upstream import UpstreamError

bp = Blueprint("proxy", __name__)
GENERATE = "/generate"
# Paths scraped every few seconds: logged only when they fail, so the log stays about traffic.
QUIET_PATHS = frozenset({"/health", "/health/ready", "/metrics"})
JSON = "application/json"
# ?content=: the seed's cumulative text (the default) or only the text added since the last chunk.
CONTENT_MODES = (None, "cumulative", "delta")
STREAM_HEADERS = {"X-Accel-Buffering": "no", "Cache-Control": "no-store"}


def init_app(app: Flask, failover: Failover) -> None:
    """Attach the worker's proxy state and register the blueprint."""
    app.extensions["gemini_proxy"] = failover
    app.register_blueprint(bp)
    app.register_blueprint(native.bp)


def _proxy() -> Failover:
    return current_app.extensions["gemini_proxy"]


def _route(method: str, path: str) -> Route | None:
    """Which counted route a request is: /generate, or a native Gemini path; None for the rest."""
    if method == "POST" and path == GENERATE:
        return "generate"
    if path.startswith(native.PREFIX + "/"):
        return "native"
    return None


@bp.before_app_request
def _start_record() -> None:
    request_id = request_id_from(request.headers.get("X-Request-ID"))
    g.record = RequestRecord(request_id, request.method, request.path)
    g.record.route = _route(request.method, request.path)
    if g.record.route is not None:
        metrics.IN_FLIGHT.inc()


@bp.after_app_request
def _finish_record(response: Response) -> Response:
    record: RequestRecord = g.record
    record.status = response.status_code
    response.headers["X-Request-ID"] = record.request_id
    # Registered after the view's own close callback (_close_stream), so it runs after it and
    # sees the stream's final counts.
    response.call_on_close(partial(_account, record))
    return response


def _account(record: RequestRecord) -> None:
    record.end()
    if record.route is not None:
        metrics.IN_FLIGHT.dec()
        metrics.observe(record)
    if record.path not in QUIET_PATHS or record.status >= 400:
        log_request(record)


# No automatic OPTIONS: /generate answers POST only, and anything else gets the JSON 405.
@bp.post(GENERATE, provide_automatic_options=False)
def generate() -> Response:
    """Relay one generation from Gemini as a stream of cumulative token-count chunks."""
    proxy, record = _proxy(), g.record
    if not password_matches(request, proxy.config.api_password):
        raise ApiError(
            401, "missing or wrong password (Authorization: Bearer, x-api-key or ?password=)"
        )
    requested = request.args.get("model")
    model = proxy.config.model_id if requested is None else validate_model(requested)
    framing, delta = _output(request.args.get("format"), request.args.get("content"))
    raw = read_body()
    validate_generate_request(raw)

    record.model = model
    pieces = proxy.stream(model, raw, record, framing, delta)
    try:
        first = next(pieces)  # failures up to here still get their own HTTP status
    except BaseException:
        pieces.close()
        raise
    response = Response(itertools.chain([first], pieces), mimetype=framing.media_type)
    response.headers.update(STREAM_HEADERS)
    # Closed when the response is, whatever happened: a client that left mid-stream included.
    response.call_on_close(partial(_close_stream, pieces, record))
    return response


def _close_stream(pieces: Generation, record: RequestRecord) -> None:
    record.end()  # before the upstream's tail is read: the client already has its last byte
    pieces.close()


def _output(format_name: str | None, content: str | None) -> tuple[Framing, bool]:
    """The body's framing (?format=, else Accept) and whether chunks carry only new text."""
    try:
        framing = choose(format_name, request.headers.get("Accept"))
    except ValueError as error:
        raise ApiError(400, str(error)) from None
    if content not in CONTENT_MODES:
        raise ApiError(400, f"content must be cumulative or delta, not {content!r}")
    return framing, content == "delta"


@bp.get("/health")
def health() -> dict[str, Any]:
    """Liveness: the process serves; key counts by state as this worker sees them."""
    proxy = _proxy()
    return {"status": "ok", "model": proxy.config.model_id, "keys": proxy.pool.counts()}


@bp.get("/health/ready")
def ready() -> Response:
    """Readiness: 503 while this worker has no usable key, so a balancer can route around it."""
    counts = _proxy().pool.counts()
    if counts["available"]:
        return Response(json.dumps({"status": "ready", "keys": counts}), mimetype=JSON)
    response = Response(json.dumps({"status": "unavailable", "keys": counts}), 503, mimetype=JSON)
    _set_retry_after(response, _proxy().pool.shortage()[1])
    return response


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    """Prometheus exposition, summed over all gunicorn workers."""
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


@bp.app_errorhandler(ApiError)
def _api_error(error: ApiError) -> Response:
    return _json_error(error.code, error.body())


@bp.app_errorhandler(UpstreamError)
def _upstream_error(error: UpstreamError) -> Response:
    response = _json_error(error.status, error.body)
    if error.retry_after is not None:
        _set_retry_after(response, error.retry_after)
    return response


def _set_retry_after(response: Response, seconds: float) -> None:
    response.headers["Retry-After"] = str(max(1, math.ceil(seconds)))


@bp.app_errorhandler(HTTPException)
def _http_exception(error: HTTPException) -> Response:
    code = error.code or 500
    response = _json_error(code, error_body(code, error.description or error.name))
    allow = dict(error.get_headers()).get("Allow")
    if allow:
        response.headers["Allow"] = allow
    return response


@bp.app_errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    record = g.get("record")
    LOGGER.exception("unhandled error", extra={"request_id": record and record.request_id})
    return _json_error(500, error_body(500, "internal error; see the proxy's log"))


def _json_error(code: int, body: dict[str, Any]) -> Response:
    record = g.get("record")
    if record is not None:
        record.error = body["error"].get("status", "UNKNOWN")
    text = json.dumps(redact_json(body, _proxy().config.api_keys), ensure_ascii=False)
    return Response(text, status=code, mimetype=JSON)
