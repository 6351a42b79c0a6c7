"""Prometheus metrics, summed across gunicorn workers by prometheus_client's multiprocess mode.

Usage::

    REQUESTS.labels(status="200").inc()
    body, content_type = render()

PROMETHEUS_MULTIPROC_DIR must be in the environment before this module is first imported
(gunicorn.conf.py sets it in the master, before any worker imports the app): prometheus_client
decides at import whether values live in per-process files or in memory.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Literal

import gevent
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

if TYPE_CHECKING:
    from .keys import KeyPool
    from .logs import RequestRecord

PREFIX = "gemini_proxy"
# A generation runs from well under a second to minutes (long thinking, long answers).
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
FIRST_CHUNK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# 0 is a request answered at once because no key was usable; MAX_ATTEMPTS is 3 by default.
ATTEMPT_BUCKETS = (0, 1, 2, 3, 5, 10)
KEY_REFRESH_SECONDS = 1.0
# The counted routes: the specification's /generate, Gemini's own paths (/v1 and /v1beta) and
# its OpenAI-compatible API, both passed through. A fixed set: the label's cardinality is bounded.
Route = Literal["generate", "native", "openai"]
# How a /generate request that reached Gemini ended, for the outcomes metric and the log.
Outcome = Literal["complete", "incomplete", "client_closed", "upstream_error"]
OUTCOMES: tuple[Outcome, ...] = ("complete", "incomplete", "client_closed", "upstream_error")

REQUESTS = Counter(
    f"{PREFIX}_requests",
    "Requests to /generate (route generate), Gemini's own paths (route native) and its "
    "OpenAI-compatible API (route openai), by status.",
    ["route", "status"],
)
UPSTREAM_REQUESTS = Counter(
    f"{PREFIX}_upstream_requests",
    "Calls to Gemini, by key id and Gemini's HTTP status (or timeout / unreachable).",
    ["key", "status"],
)
TOKENS = Counter(f"{PREFIX}_tokens", "Tokens of finished generations (Gemini's totalTokenCount).")
CHUNKS = Counter(f"{PREFIX}_chunks", "Chunks sent to clients.")
REQUEST_DURATION = Histogram(
    f"{PREFIX}_request_duration_seconds",
    "Time from receiving a /generate request to its last byte.",
    buckets=DURATION_BUCKETS,
)
FIRST_CHUNK = Histogram(
    f"{PREFIX}_first_chunk_seconds",
    "Time from receiving a /generate request to sending its first chunk.",
    buckets=FIRST_CHUNK_BUCKETS,
)
# livesum: the open requests of live workers, added up; a dead worker's count is dropped.
IN_FLIGHT = Gauge(
    f"{PREFIX}_in_flight",
    "Requests (/generate, native and OpenAI-compatible routes) being served right now, from"
    " arrival to the answer's last byte.",
    multiprocess_mode="livesum",
)

# livemax: a key counts as usable while any live worker can use it (each worker keeps its own
# view, see app.keys); a dead worker's view is dropped.
KEY_AVAILABLE = Gauge(
    f"{PREFIX}_key_available",
    "1 while the key is usable for MODEL_ID (by at least one worker), 0 while it is out for it.",
    ["key"],
    multiprocess_mode="livemax",
)
# livemax again: out (1) while any live worker has it out for that model; model "*" is every model.
KEY_OUT = Gauge(
    f"{PREFIX}_key_out",
    "1 while the key is out of rotation for the model (* for every model), 0 once it is back.",
    ["key", "model", "state"],
    multiprocess_mode="livemax",
)
KEY_COOLDOWNS = Counter(
    f"{PREFIX}_key_cooldowns",
    "Times a key was taken out of rotation, by key id and reason.",
    ["key", "reason"],
)
# livemin: 0 while any live worker finds the backend out. Labelled, so that without REDIS_URL
# no sample is exported at all rather than a misleading 0.
SHARED_UP = Gauge(
    f"{PREFIX}_shared_state_up",
    "1 while the shared key state answers, 0 while it is out and each worker goes alone.",
    ["backend"],
    multiprocess_mode="livemin",
)
SHARED_ERRORS = Counter(
    f"{PREFIX}_shared_state_errors",
    "Failed calls to the shared key state (REDIS_URL), by error class.",
    ["error"],
)
UPSTREAM_ATTEMPTS = Histogram(
    f"{PREFIX}_upstream_attempts",
    "Upstream calls (keys tried) per valid request of /generate, native or OpenAI routes.",
    buckets=ATTEMPT_BUCKETS,
)
STREAM_OUTCOMES = Counter(
    f"{PREFIX}_stream_outcomes",
    "How /generate requests that reached Gemini ended.",
    ["outcome"],
)
for _outcome in OUTCOMES:
    # Every outcome is exported from the start, so a ratio over them is defined at zero too.
    STREAM_OUTCOMES.labels(outcome=_outcome)


# The (key, model, state) labels this worker set to 1: set back to 0 when the penalty ends.
_published_out: set[tuple[str, str, str]] = set()


def publish_keys(pool: KeyPool, model: str) -> None:
    """Set each key's gauges from this worker's view: usable for `model` (MODEL_ID), and what it
    is out for."""
    for key in pool.keys:
        KEY_AVAILABLE.labels(key=key.id).set(1 if pool.state(key, model) == "available" else 0)
    out = {(outage.key, outage.model, outage.state) for outage in pool.outages()}
    for labels in _published_out - out:
        KEY_OUT.labels(*labels).set(0)
    for labels in out:
        KEY_OUT.labels(*labels).set(1)
    _published_out.clear()
    _published_out.update(out)


def watch_keys(pool: KeyPool, model: str) -> gevent.Greenlet:
    """Republish the key gauges every KEY_REFRESH_SECONDS in a background greenlet.

    A cooldown ends with the passing of time, not with an event: without this, an idle
    worker's gauge would show a key as unavailable long after it is usable again. The greenlet
    holds the pool weakly and ends once the pool (its app) is gone.
    """
    pool_ref = weakref.ref(pool)

    def refresh() -> None:
        while (current := pool_ref()) is not None:
            publish_keys(current, model)
            del current
            gevent.sleep(KEY_REFRESH_SECONDS)

    return gevent.spawn(refresh)


def observe(record: RequestRecord) -> None:
    """Count one finished request of a counted route.

    Every route counts in REQUESTS (labelled by route); the stream metrics below describe
    /generate's streams only, so the native routes' answers, passed on unread, do not dilute them.
    """
    REQUESTS.labels(route=str(record.route), status=str(record.status)).inc()
    if record.route != "generate":
        return
    if record.duration_seconds is not None:
        REQUEST_DURATION.observe(record.duration_seconds)
    if record.first_chunk_seconds is not None:
        FIRST_CHUNK.observe(record.first_chunk_seconds)
    if record.total_tokens:
        TOKENS.inc(record.total_tokens)
    if record.chunks:
        CHUNKS.inc(record.chunks)
    if record.outcome is not None:
        STREAM_OUTCOMES.labels(outcome=record.outcome).inc()


def render() -> tuple[bytes, str]:
    """The exposition text for /metrics and its content type."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        # The documented pattern: a fresh registry per scrape reading every worker's files.
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
