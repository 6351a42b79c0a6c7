"""The HTTP surface: POST /generate, GET /health and GET /metrics, and JSON errors for all.

A /generate request, top to bottom: password, model, body, key, upstream call, then the relay
primed up to its first chunk before any status is sent, then streamed.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from . import metrics
from .auth import password_matches
from .chunker import Chunker
from .config import MODEL_NAME, Config
from .errors import ApiError, error_body
from .keys import KeyRing
from .logs import RequestRecord, log_request, request_id_from
from .redact import redact
from .relay import relay
from .schemas import load_generate_request
from .upstream import GeminiClient, UpstreamError, UpstreamStream

bp = Blueprint("proxy", __name__)
LOGGER = logging.getLogger("gemini_proxy")
GENERATE = "/generate"
# Paths scraped every few seconds: logged only when they fail, so the log stays about traffic.
QUIET_PATHS = frozenset({"/health", "/metrics"})
MAX_MODEL_NAME = 128
STREAM_HEADERS = {"X-Accel-Buffering": "no", "Cache-Control": "no-store"}


@dataclass(frozen=True)
class Proxy:
    """The per-worker state the routes share: settings, key ring and upstream client."""

    config: Config
    keys: KeyRing
    client: GeminiClient


def init_app(app: Flask, proxy: Proxy) -> None:
    """Attach the worker's proxy state and register the blueprint."""
    app.extensions["gemini_proxy"] = proxy
    app.register_blueprint(bp)


def _proxy() -> Proxy:
    return current_app.extensions["gemini_proxy"]


@bp.before_app_request
def _start_record() -> None:
    g.record = RequestRecord(request_id_from(request.headers.get("X-Request-ID")), request.path)
    if request.path == GENERATE:
        metrics.IN_FLIGHT.inc()


@bp.after_app_request
def _finish_record(response: Response) -> Response:
    record: RequestRecord = g.record
    record.status = response.status_code
    response.headers["X-Request-ID"] = record.request_id
    response.call_on_close(partial(_account, record))
    return response


def _account(record: RequestRecord) -> None:
    record.end()
    if record.path == GENERATE:
        metrics.IN_FLIGHT.dec()
        metrics.observe(record)
    if record.path not in QUIET_PATHS or record.status >= 400:
        log_request(record)


@bp.post(GENERATE)
def generate() -> Response:
    """Relay one generation from Gemini as a stream of cumulative token-count chunks."""
    proxy, record = _proxy(), g.record
    if not password_matches(request, proxy.config.api_password):
        raise ApiError(
            401, "missing or wrong password (Authorization: Bearer, x-api-key or ?password=)"
        )
    model = _model(request.args.get("model"), proxy.config.model_id)
    raw = _read_body()
    load_generate_request(raw)

    key = proxy.keys.next()
    record.model, record.key = model, key.id
    try:
        upstream = proxy.client.open_stream(model, raw, key)
    except UpstreamError as error:
        metrics.UPSTREAM_REQUESTS.labels(key=key.id, status=error.upstream_status).inc()
        raise
    metrics.UPSTREAM_REQUESTS.labels(key=key.id, status="200").inc()

    chunker = Chunker(proxy.config.chunk_token)
    pieces = relay(upstream.iter_bytes(), chunker, record)
    try:
        first = next(pieces)
    except BaseException:
        upstream.close()
        raise
    finally:
        _take_counts(record, chunker)
    response = Response(itertools.chain([first], pieces), mimetype="application/json")
    response.headers.update(STREAM_HEADERS)
    # The relay's own cleanup would run only if it were iterated to the end; the client may leave
    # before that, so the upstream is closed when the response is, whatever happened.
    response.call_on_close(partial(_close_stream, upstream, chunker, record))
    return response


def _close_stream(upstream: UpstreamStream, chunker: Chunker, record: RequestRecord) -> None:
    upstream.close(reuse=chunker.done)
    _take_counts(record, chunker)


def _read_body() -> bytes:
    raw = request.get_data(cache=False)
    # A body without Content-Length (chunked) is cut at MAX_CONTENT_LENGTH by werkzeug without an
    # error; one more byte behind the limit means it was longer than allowed.
    if len(raw) == current_app.config["MAX_CONTENT_LENGTH"] and request.environ["wsgi.input"].read(
        1
    ):
        raise RequestEntityTooLarge()
    return raw


def _take_counts(record: RequestRecord, chunker: Chunker) -> None:
    record.chunks = chunker.chunks_sent
    record.prompt_tokens = chunker.prompt_tokens
    record.total_tokens = chunker.total_tokens


def _model(requested: str | None, default: str) -> str:
    if requested is None:
        return default
    if len(requested) > MAX_MODEL_NAME or not MODEL_NAME.fullmatch(requested):
        raise ApiError(
            400, "model must be letters, digits, '.', '-' and '_' only (e.g. gemini-2.5-flash)"
        )
    return requested


@bp.get("/health")
def health() -> dict[str, Any]:
    """Liveness: the process serves; no Gemini call, no secret."""
    config = _proxy().config
    return {"status": "ok", "keys": len(config.api_keys), "model": config.model_id}


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
    g.record.error = error.upstream_status
    return _json_error(error.status, error.body)


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
    text = redact(json.dumps(body, ensure_ascii=False), _proxy().config.api_keys)
    return Response(text, status=code, mimetype="application/json")
