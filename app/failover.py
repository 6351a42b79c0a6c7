"""One generation across the worker's keys: a key per attempt, the next key on a key's failure.

Usage::

    failover = Failover(config, KeyPool(config.api_keys, config.key_disable_seconds), client)
    pieces = failover.stream(model, body, record)
    first = next(pieces)  # raises UpstreamError if no attempt got as far as a byte for the client
    ...
    pieces.close()  # once the response is sent: releases the upstream connection

Before the first chunk reaches the client a failed attempt costs nothing visible, so the next key
is tried (up to MAX_ATTEMPTS and FAILOVER_DEADLINE). After it, text has gone out and a retry would
repeat it, so the relay ends the body with an error element instead. The native routes use the
same keys, calls and verdicts through `Failover.passthrough`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import gevent

from . import metrics
from .chunker import Chunker
from .classify import DISABLING
from .config import Config
from .errors import error_body
from .formats import ARRAY, Framing
from .keys import Key, KeyPool, Shortage
from .logs import CLIENT_CLOSED, LOGGER, RequestRecord
from .relay import INTERNAL, KeepAlive, end_with_error, relay
from .upstream import GeminiClient, UpstreamError, UpstreamStream, refused_key

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
    """The worker's settings, key pool and Gemini client, shared by all its requests."""

    config: Config
    pool: KeyPool
    client: GeminiClient

    def stream(
        self,
        model: str,
        body: bytes,
        record: RequestRecord,
        framing: Framing = ARRAY,
        delta: bool = False,
    ) -> Generation:
        """The client's body pieces for one generation, trying keys until one streams."""
        return Generation(self, model, body, record, framing, delta)

    def keys(self, record: RequestRecord) -> Iterator[tuple[Key, float]]:
        """The keys to try for one request, each with the seconds left of its deadline.

        Stops at MAX_ATTEMPTS, at FAILOVER_DEADLINE, or when no untried key is usable.
        """
        while record.attempts < self.config.attempts_per_request:
            remaining = record.started + self.config.failover_deadline - time.perf_counter()
            key = self.pool.acquire(exclude=record.keys_tried) if remaining > 0 else None
            if key is None:
                return
            record.keys_tried.append(key.id)
            yield key, remaining

    def call(self, start: Callable[[], UpstreamStream]) -> gevent.Greenlet:
        """Run `start` (a call to Gemini) in its own greenlet, which the caller may wait on."""

        def call() -> UpstreamStream | Exception:
            # Returned, not raised: gevent prints a greenlet's exception to stderr, past the
            # logging filter that removes keys from what Gemini said.
            try:
                return start()
            except Exception as failure:  # noqa: BLE001 - handed to answer(), which raises it
                return failure

        return gevent.spawn(call)

    def passthrough(
        self, method: str, path: str, body: bytes | None, record: RequestRecord
    ) -> tuple[UpstreamStream, bytes]:
        """Gemini's first usable answer to `method path` and its first bytes, trying keys as
        /generate does.

        For the native routes: the answer is passed on as it is, so nothing can be retried
        once its first byte has gone out; until then (headers and a silence or a cut included)
        the next key is tried.
        """
        failures: list[UpstreamError] = []
        try:
            for key, remaining in self.keys(record):
                start = partial(self.client.open, method, path, key, body, remaining)
                try:
                    upstream = self.answer(self.call(start), key)
                except UpstreamError as failure:
                    failures.append(self.failed(key, failure, record))
                    if not failure.verdict.retryable:
                        break
                    continue
                try:
                    first = next((data for data in upstream.iter_bytes() if data is not None), b"")
                except UpstreamError as failure:
                    upstream.close()
                    failures.append(self.failed(key, failure, record))
                    continue
                return upstream, first
            raise self.final(failures)
        finally:
            metrics.UPSTREAM_ATTEMPTS.observe(record.attempts)

    def answer(self, opener: gevent.Greenlet, key: Key) -> UpstreamStream:
        """The finished call's stream, counted; or its UpstreamError, counted and raised."""
        result = opener.get()
        if isinstance(result, UpstreamError):
            metrics.UPSTREAM_REQUESTS.labels(key=key.id, status=result.upstream_status).inc()
            raise result
        if isinstance(result, Exception):
            self.pool.release(key)
            raise result
        metrics.UPSTREAM_REQUESTS.labels(key=key.id, status=OPENED).inc()
        self.pool.succeeded(key)
        return result

    def abandon(self, opener: gevent.Greenlet, key: Key) -> None:
        """Stop a call nobody waits for; no verdict on its key, so a probe may be lent again."""
        opener.kill()
        if isinstance(opener.value, UpstreamStream):
            opener.value.close()
        self.pool.release(key)

    def failed(self, key: Key, failure: UpstreamError, record: RequestRecord) -> UpstreamError:
        """Act on the failed attempt's key; return the failure as the client would see it."""
        verdict = failure.verdict
        seconds = self.pool.penalise(key, verdict)
        if seconds is not None:
            # The gauges change with a penalty (at once, here) or with time (metrics.watch_keys).
            metrics.publish_keys(self.pool)
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
        refused = verdict.kind in DISABLING and failure.status != 500
        return refused_key(failure, key) if refused else failure

    def final(self, failures: list[UpstreamError]) -> UpstreamError:
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


class Generation:
    """One request's body as an iterator of pieces; close() it once the response is sent.

    The upstream of a complete answer is released by close(), after the response's last byte
    went out, so reading its tail for connection reuse never delays the client.
    """

    def __init__(
        self,
        failover: Failover,
        model: str,
        body: bytes,
        record: RequestRecord,
        framing: Framing = ARRAY,
        delta: bool = False,
    ) -> None:
        self.failover = failover
        self.model = model
        self.body = body
        self.record = record
        self.framing = framing
        self.delta = delta
        self.chunker = Chunker(failover.config.chunk_token)
        self._upstream: UpstreamStream | None = None
        self._pieces = self._run()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._pieces)

    def close(self) -> None:
        """End the generation (the client may have left) and release the upstream."""
        try:
            self._pieces.close()
        finally:
            if self._upstream is not None:
                self._upstream.close(reuse=self.chunker.done)
                self._upstream = None

    def _end(self, failure: UpstreamError) -> bytes:
        """The body's error ending when only keep-alives went out before the failure."""
        secrets = self.failover.config.api_keys
        return end_with_error(failure, self.chunker, self.record, secrets, False, self.framing)

    def _run(self) -> Iterator[bytes]:
        failover, record = self.failover, self.record
        config = failover.config
        pulse = KeepAlive(config.keepalive_seconds, record.started)
        sent = False  # any byte, a keep-alive space included, went to the client
        failures: list[UpstreamError] = []
        try:
            for key, remaining in failover.keys(record):
                self.chunker = Chunker(config.chunk_token)
                opener = failover.call(
                    partial(failover.client.open_stream, self.model, self.body, key, remaining)
                )
                try:
                    while not opener.ready():
                        opener.join(pulse.wait())
                        if not opener.ready() and pulse.due():
                            sent = True
                            pulse.sent()
                            yield self.framing.keepalive
                except BaseException:  # the client left, or the worker is stopping
                    failover.abandon(opener, key)
                    raise
                try:
                    self._upstream = failover.answer(opener, key)
                    pieces = relay(
                        self._upstream.iter_bytes(),
                        self.chunker,
                        record,
                        config.api_keys,
                        pulse,
                        on_failure=lambda failure, key=key: failover.failed(key, failure, record),
                        framing=self.framing,
                        delta=self.delta,
                    )
                    for piece in pieces:
                        sent = True
                        yield piece
                    return
                except UpstreamError as failure:
                    failures.append(failover.failed(key, failure, record))
                    if self._upstream is not None:
                        self._upstream.close()
                        self._upstream = None
                    if not failure.verdict.retryable:
                        break
            final = failover.final(failures)
            if sent:
                yield self._end(final)
                return
            raise final
        except GeneratorExit:
            record.outcome, record.error = "client_closed", CLIENT_CLOSED
            raise
        except Exception:
            if not sent:
                raise
            # Keep-alive spaces committed a 200: a bug now must still end the body as JSON.
            LOGGER.exception("stream failed", extra={"request_id": record.request_id})
            internal = UpstreamError(500, error_body(500, INTERNAL), "internal")
            yield self._end(internal)
        finally:
            record.chunks = self.chunker.chunks_sent
            record.prompt_tokens = self.chunker.prompt_tokens
            record.total_tokens = self.chunker.total_tokens
            metrics.UPSTREAM_ATTEMPTS.observe(record.attempts)
