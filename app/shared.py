"""Key state shared through Redis by every worker of every instance: penalties and probe leases.

Usage::

    shared = SharedKeyState(redis_client(config.redis_url))   # in the app factory, after the fork
    pool = KeyPool(config.api_keys, 3600, shared=shared)
    shared.penalise("3f2a...", "gemini-2.5-pro", "quota", 30.0)  # the penalty in force fleet-wide

Redis never sees a key: each is named by its fingerprint (a truncated SHA-256). A deadline is
decided inside Redis by a Lua script on Redis' own clock (TIME), and only ever moves later, so
neither a shorter penalty nor a host's skewed clock can bring a key back early. Redis down or
hanging costs a request at most one short timeout: the circuit then stays open CIRCUIT_SECONDS,
callers get None and go on with their own state.
"""

from __future__ import annotations

import hashlib
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import gevent
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import metrics
from .classify import DISABLING
from .logs import LOGGER

BACKEND = "redis"
NAMESPACE = "gemini-proxy"
# One hash: field "<fingerprint>|<model>" (model "*" for every model), value "<until ms>|<kind>".
PENALTIES = f"{NAMESPACE}:penalties"
PROBE_LEASE = f"{NAMESPACE}:probe:"
FIELD_SEPARATOR = "|"
# 64 bits of SHA-256: no collision among any real key list, and nothing to recover the key from.
FINGERPRINT_HEX = 16
# Short enough that a hanging Redis costs a request little; a healthy one answers in well under.
TIMEOUT_SECONDS = 0.25
# After a failure Redis is left alone this long: a dead backend costs one timeout per period.
CIRCUIT_SECONDS = 5.0
MS = 1000.0
# The mirror follows Redis this often: at most one read per second per worker.
REFRESH_SECONDS = 1.0
# A probe's call ends well within this; a holder that died lets the lease lapse by then.
PROBE_LEASE_SECONDS = 60.0
# How Redis names a penalty for every model.
EVERY_MODEL_FIELD = "*"
# The kinds whose entries outlive their deadline (PENALISE_SCRIPT's ARGV[5]).
LASTING_KINDS = "," + ",".join(sorted(DISABLING)) + ","

T = TypeVar("T")

# Keeps the later of the deadline in force and now + ARGV[2] ms (ARGV[4] "1": replaces it, as a
# probe's verdict does); returns Redis' now and the penalty in force ("<until ms>|<kind>"). Ended
# entries of the hash (a handful: keys x models) are dropped on the way, but for the kinds in
# ARGV[5] (",invalid_key,forbidden,"): a refused key's end is a probe's success, not a time.
PENALISE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = now + tonumber(ARGV[2])
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local ends, kind = string.match(entries[i + 1], '^(%d+)|(.*)$')
  local lasting = kind and string.find(ARGV[5], ',' .. kind .. ',', 1, true)
  if not lasting and entries[i] ~= ARGV[1] and (not ends or tonumber(ends) <= now) then
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and ARGV[4] ~= '1' then
  local ends = tonumber(string.match(current, '^(%d+)|'))
  if ends and ends >= deadline then return {now, current} end
end
local value = deadline .. '|' .. ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], value)
return {now, value}
"""
# Redis' now and every penalty, read at one instant.
SNAPSHOT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {now, redis.call('HGETALL', KEYS[1])}
"""


def redis_client(url: str) -> redis.Redis:
    """A client for REDIS_URL that fails fast: short timeouts, no retries (see CIRCUIT_SECONDS)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=TIMEOUT_SECONDS,
        socket_connect_timeout=TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        decode_responses=True,
    )


@dataclass(frozen=True)
class Penalty:
    """One penalty in Redis, its deadline as seconds from now on Redis' clock."""

    fingerprint: str
    model: str | None
    kind: str
    seconds: float


class SharedKeyState:
    """Penalties and probe leases in Redis, behind a circuit breaker; None means "Redis is out"."""

    def __init__(
        self,
        client: redis.Redis,
        clock: Callable[[], float] = time.monotonic,
        probe_lease: float = PROBE_LEASE_SECONDS,
    ) -> None:
        if not probe_lease > 0:
            raise ValueError(f"probe_lease must be positive, got {probe_lease!r}")
        self._client = client
        self._lease_ms = round(probe_lease * MS)
        self._clock = clock
        self._penalise = client.register_script(PENALISE_SCRIPT)
        self._snapshot = client.register_script(SNAPSHOT_SCRIPT)
        self._open_until = 0.0
        self.up = True
        metrics.SHARED_UP.labels(backend=BACKEND).set(1)
        # Set when Redis answers again after an outage; the pool re-publishes and clears it.
        self.came_back = False

    @staticmethod
    def fingerprint(secret: str) -> str:
        """The name Redis knows a key by: the same on every instance, whatever its list's order."""
        return hashlib.sha256(secret.encode()).hexdigest()[:FINGERPRINT_HEX]

    def penalise(
        self,
        fingerprint: str,
        model: str | None,
        kind: str,
        seconds: float,
        probe: bool = False,
    ) -> Penalty | None:
        """Penalise fleet-wide unless a later deadline stands; the penalty now in force.

        A probe's verdict (`probe`) replaces the penalty it probed, whose time was up.
        """
        field = _field(fingerprint, model)
        args = [field, round(seconds * MS), kind, "1" if probe else "0", LASTING_KINDS]
        answer = self._guarded(lambda: self._penalise(keys=[PENALTIES], args=args))
        return None if answer is None else _penalty(field, answer[1], int(answer[0]))

    def penalties(self) -> list[Penalty] | None:
        """Every penalty in force, as seconds left, and refused keys whose time is up (seconds
        of 0 or less: they wait for a probe)."""
        answer = self._guarded(lambda: self._snapshot(keys=[PENALTIES]))
        if answer is None:
            return None
        now, flat = int(answer[0]), answer[1]
        entries = zip(flat[::2], flat[1::2], strict=True)
        found = (_penalty(field, value, now) for field, value in entries)
        return [
            penalty
            for penalty in found
            if penalty is not None and (penalty.seconds > 0 or penalty.kind in DISABLING)
        ]

    def forgive(self, fingerprint: str) -> None:
        """A probe succeeded: the key is back for every model, fleet-wide."""
        self._guarded(lambda: self._client.hdel(PENALTIES, _field(fingerprint, None)))
        self.end_probe(fingerprint)

    def lease_probe(self, fingerprint: str) -> bool | None:
        """Whether this worker won the fleet's one probe of the key.

        The lease lapses after `probe_lease` seconds by itself, should its holder die mid-probe.
        """
        lease, lease_ms = PROBE_LEASE + fingerprint, self._lease_ms
        return self._guarded(lambda: bool(self._client.set(lease, "1", nx=True, px=lease_ms)))

    def end_probe(self, fingerprint: str) -> None:
        """The probe ended: another may be lent once the key's time is up again."""
        self._guarded(lambda: self._client.delete(PROBE_LEASE + fingerprint))

    def _guarded(self, call: Callable[[], T]) -> T | None:
        """`call`'s answer, or None while Redis is out (one log line down, one back)."""
        now = self._clock()
        if now < self._open_until:
            return None
        try:
            answer = call()
        except redis.RedisError as error:
            self._open_until = now + CIRCUIT_SECONDS
            metrics.SHARED_ERRORS.labels(error=type(error).__name__).inc()
            if self.up:
                self.up = False
                metrics.SHARED_UP.labels(backend=BACKEND).set(0)
                # The class only: a message could quote the URL, and with it a password.
                LOGGER.warning(
                    "shared key state down: using this worker's own",
                    extra={"error": type(error).__name__, "retry_in": CIRCUIT_SECONDS},
                )
            return None
        if not self.up:
            self.up, self.came_back = True, True
            metrics.SHARED_UP.labels(backend=BACKEND).set(1)
            LOGGER.info("shared key state back: resyncing")
        return answer


def follow(refresh: Callable[[], None]) -> gevent.Greenlet:
    """Run the bound method `refresh` every REFRESH_SECONDS in a background greenlet.

    Holds its object weakly: the greenlet ends once the pool (its app) is gone.
    """
    method = weakref.WeakMethod(refresh)  # type: ignore[arg-type]

    def loop() -> None:
        while (current := method()) is not None:
            try:
                current()
            except Exception:  # noqa: BLE001 - a bug must not end the mirror for the worker's life
                LOGGER.exception("shared key state refresh failed")
            del current
            gevent.sleep(REFRESH_SECONDS)

    return gevent.spawn(loop)


def _penalty(field: str, value: str, now_ms: int) -> Penalty | None:
    """A hash entry read at Redis' `now_ms`; None for one this version cannot read."""
    fingerprint, _, model = field.partition(FIELD_SEPARATOR)
    deadline, _, kind = value.partition(FIELD_SEPARATOR)
    if not deadline.isdigit():
        return None
    model_or_all = None if model == EVERY_MODEL_FIELD else model
    return Penalty(fingerprint, model_or_all, kind, (int(deadline) - now_ms) / MS)


def _field(fingerprint: str, model: str | None) -> str:
    return f"{fingerprint}{FIELD_SEPARATOR}{EVERY_MODEL_FIELD if model is None else model}"
