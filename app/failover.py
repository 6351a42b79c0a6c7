"""One generation across the worker's keys: a key per attempt, the next key on a key's failure.

Usage::

    failover = Failover(config, KeyPool(config.api_keys), client)
    pieces = failover.stream(model, body, record)
    first = next(pieces)  # raises UpstreamError if no attempt got as far as a byte for the client

Before the first chunk reaches the client a failed attempt costs nothing visible, so the next key
is tried (up to MAX_ATTEMPTS and FAILOVER_DEADLINE). After it, text has gone out and a retry would
repeat it, so the relay ends the array with an error element instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from . import metrics
from .chunker import Chunker
from .classify import DISABLING
from .config import Config
from .errors import error_body
from .keys import Key, KeyPool, Shortage
from .logs import CLIENT_CLOSED, LOGGER, RequestRecord
from .relay import CLOSE, OPEN, error_element, outcome_of, relay
from .upstream import GeminiClient, UpstreamError, UpstreamStream

# The answer when no key is usable, by why: Gemini's quota, Gemini's errors, refused keys.
SHORTAGE_STATUS: dict[Shortage, int] = {"quota": 429, "upstream_error": 503, "disabled": 500}
SHORTAGE_MESSAGE: dict[Shortage, str] = {
    "quota": "every API key of the proxy is out of quota; retry after the Retry-After seconds",
    "upstream_error": "Gemini failed on every API key of the proxy just now; retry shortly",
    "disabled": "every API key of the proxy is refused by Gemini (invalid or forbidden)",
}
DEADLINE_MESSAGE = "FAILOVER_DEADLINE passed before Gemini could be called"
# The upstream metric's label for a call Gemini accepted; the label of an answer made without
# any call.
OPENED = "200"
NO_CALL = "none"


@dataclass(frozen=True)
class Failover:
    """The worker's settings, key pool and Gemini client, and the attempt loop over them."""

    config: Config
    pool: KeyPool
    client: GeminiClient

    def stream(self, model: str, body: bytes, record: RequestRecord) -> Iterator[bytes]:
        """The client's body pieces for one generation, trying keys until one streams."""
        config, sent = self.config, False
        failures: list[UpstreamError] = []
        chunker = Chunker(config.chunk_token)
        try:
            while record.attempts < config.attempts_per_request:
                remaining = record.started + config.failover_deadline - time.perf_counter()
                key = self.pool.acquire(exclude=record.keys_tried) if remaining > 0 else None
                if key is None:
                    break
                record.keys_tried.append(key.id)
                chunker = Chunker(config.chunk_token)
                try:
                    upstream = self._open(model, body, key, remaining)
                except UpstreamError as failure:
                    if not self._failed(key, failure, failures, record):
                        break
                    continue
                try:
                    for piece in relay(upstream.iter_bytes(), chunker, record, config.api_keys):
                        sent = True
                        yield piece
                    record.end()  # the last byte is out; reading the tail is not its time
                    return
                except UpstreamError as failure:
                    if not self._failed(key, failure, failures, record):
                        break
                finally:
                    upstream.close(reuse=chunker.done)
            final = self._final(failures)
            if sent:
                yield OPEN + error_element(final, chunker, record, config.api_keys) + CLOSE
                return
            if final.verdict.retryable and final.upstream_status != NO_CALL:
                record.outcome = outcome_of(final)
            raise final
        except GeneratorExit:
            record.outcome, record.error = "client_closed", CLIENT_CLOSED
            raise
        finally:
            record.chunks = chunker.chunks_sent
            record.prompt_tokens = chunker.prompt_tokens
            record.total_tokens = chunker.total_tokens
            metrics.UPSTREAM_ATTEMPTS.observe(record.attempts)
            metrics.publish_keys(self.pool)

    def _open(self, model: str, body: bytes, key: Key, remaining: float) -> UpstreamStream:
        try:
            upstream = self.client.open_stream(model, body, key, wait=remaining)
        except UpstreamError as failure:
            metrics.UPSTREAM_REQUESTS.labels(key=key.id, status=failure.upstream_status).inc()
            raise
        except BaseException:
            # No verdict on the key (a bug, or the worker stopping): a probe may be lent again.
            self.pool.release(key)
            raise
        metrics.UPSTREAM_REQUESTS.labels(key=key.id, status=OPENED).inc()
        self.pool.succeeded(key)
        return upstream

    def _failed(
        self,
        key: Key,
        failure: UpstreamError,
        failures: list[UpstreamError],
        record: RequestRecord,
    ) -> bool:
        """Note a failed attempt and act on its key; return whether another key may be tried."""
        failures.append(failure)
        verdict = failure.verdict
        seconds = self.pool.penalise(key, verdict)
        if not verdict.retryable:
            return False
        metrics.KEY_COOLDOWNS.labels(key=key.id, reason=verdict.kind).inc()
        log = LOGGER.warning if verdict.kind in DISABLING else LOGGER.info
        log(
            "key out of rotation",
            extra={
                "request_id": record.request_id,
                "key": key.id,
                "reason": verdict.kind,
                "seconds": round(seconds, 3),
            },
        )
        return True

    def _final(self, failures: list[UpstreamError]) -> UpstreamError:
        """The error the client gets once no further attempt will be made."""
        if not failures and self.pool.counts()["available"]:
            # Keys were free, but the request's time was up before one could be tried.
            return UpstreamError(504, error_body(504, DEADLINE_MESSAGE), NO_CALL)
        if not failures:
            why, wait = self.pool.shortage()
            status = SHORTAGE_STATUS[why]
            final = UpstreamError(status, error_body(status, SHORTAGE_MESSAGE[why]), NO_CALL)
        else:
            # A refused key is the operator's problem; a quota or Gemini error tells the client
            # more (it can retry), so it is preferred when the attempts met both.
            usable = [f for f in failures if f.verdict.kind not in DISABLING]
            final = (usable or failures)[-1]
            wait = self.pool.shortage()[1]
        if final.verdict.retryable and not self.pool.counts()["available"]:
            final.retry_after = wait
        return final
