"""The per-request record, counted in the metrics and logged as one JSON line at its end.

Usage::

    logs.init_app(app)  # every request gets g.record, accounted for once its response is closed

The lines become JSON in the handler gunicorn.conf.py installs on the root logger, for gunicorn's
own lines and the app's alike; this module only says what a line holds.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from flask import Flask, Response, g, request

from . import metrics
from .metrics import Outcome, Route
from .paths import API_VERSIONS, GENERATE_PATH, OPENAI_PREFIX

LOGGER = logging.getLogger("gemini_proxy")
# An incoming X-Request-ID is reused only when it is short and plain, so it is safe to log and echo.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
CLIENT_CLOSED = "CLIENT_CLOSED"
# Paths scraped every few seconds: logged only when they fail, so the log stays about traffic.
QUIET_PATHS = frozenset({"/health", "/health/ready", "/metrics"})
NATIVE_PREFIXES = tuple(f"/{version}/" for version in API_VERSIONS)


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID when it is safe to reuse, else a new one."""
    if header and REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


@dataclass
class RequestRecord:
    """What one request did, filled in as it goes and logged once at its end."""

    request_id: str
    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)
    status: int | None = None
    route: Route | None = None
    model: str | None = None
    # The ids of the keys of the upstream calls made, in order; the last one served the answer.
    keys_tried: list[str] = field(default_factory=list)
    outcome: Outcome | None = None
    prompt_tokens: int | None = None
    total_tokens: int | None = None
    chunks: int = 0
    first_chunk_seconds: float | None = None
    duration_seconds: float | None = None
    # The Gemini-style status of what went wrong (e.g. RESOURCE_EXHAUSTED), or CLIENT_CLOSED.
    error: str | None = None

    def mark_first_chunk(self) -> None:
        self.first_chunk_seconds = time.perf_counter() - self.started

    def end(self) -> None:
        """Fix the request's duration at its first call: when the last byte went out."""
        if self.duration_seconds is None:
            self.duration_seconds = time.perf_counter() - self.started

    @property
    def attempts(self) -> int:
        """Upstream calls made for this request (no key is tried twice in one request)."""
        return len(self.keys_tried)

    def fields(self) -> dict[str, Any]:
        """The log line's fields, times rounded to the millisecond."""
        values = dict(vars(self), attempts=self.attempts)
        del values["started"]
        for name in ("first_chunk_seconds", "duration_seconds"):
            if values[name] is not None:
                values[name] = round(values[name], 3)
        return values


def log_request(record: RequestRecord) -> None:
    LOGGER.info("request", extra=record.fields())


def init_app(app: Flask) -> None:
    """Give every request of `app` its record, counted and logged once the response is closed."""
    app.before_request(_start_record)
    app.after_request(_finish_record)


def route_of(method: str, path: str) -> Route | None:
    """Which counted route a request is: /generate, Gemini's OpenAI-compatible API, or a native
    Gemini path; None for the rest."""
    if method == "POST" and path == GENERATE_PATH:
        return "generate"
    if path.startswith(OPENAI_PREFIX + "/"):
        return "openai"
    if path.startswith(NATIVE_PREFIXES):
        return "native"
    return None


def _start_record() -> None:
    request_id = request_id_from(request.headers.get("X-Request-ID"))
    g.record = RequestRecord(request_id, request.method, request.path)
    g.record.route = route_of(request.method, request.path)
    if g.record.route is not None:
        metrics.IN_FLIGHT.inc()


def _finish_record(response: Response) -> Response:
    record: RequestRecord = g.record
    record.status = response.status_code
    response.headers["X-Request-ID"] = record.request_id
    # Registered after the view's own close callback (the body's close), so it runs after it
    # and sees the stream's final counts.
    response.call_on_close(partial(_account, record))
    return response


def _account(record: RequestRecord) -> None:
    record.end()
    if record.route is not None:
        metrics.IN_FLIGHT.dec()
        metrics.observe(record)
    if record.path not in QUIET_PATHS or record.status >= 400:
        log_request(record)
