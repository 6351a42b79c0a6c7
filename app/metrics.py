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

from .logs import RequestRecord

PREFIX = "gemini_proxy"
# A generation runs from well under a second to minutes (long thinking, long answers).
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
FIRST_CHUNK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter(
    f"{PREFIX}_requests", "Requests to /generate, by the HTTP status answered.", ["status"]
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
    "/generate requests being served right now, from arrival to the stream's last byte.",
    multiprocess_mode="livesum",
)


def observe(record: RequestRecord) -> None:
    """Count one finished /generate request."""
    REQUESTS.labels(status=str(record.status)).inc()
    if record.duration_seconds is not None:
        REQUEST_DURATION.observe(record.duration_seconds)
    if record.first_chunk_seconds is not None:
        FIRST_CHUNK.observe(record.first_chunk_seconds)
    if record.total_tokens:
        TOKENS.inc(record.total_tokens)
    if record.chunks:
        CHUNKS.inc(record.chunks)


def render() -> tuple[bytes, str]:
    """The exposition text for /metrics and its content type."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        # The documented pattern: a fresh registry per scrape reading every worker's files.
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
