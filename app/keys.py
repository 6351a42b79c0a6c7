"""The worker's API keys: round-robin choice, skipping keys that are cooling down or disabled.

Usage::

    pool = KeyPool(["AIza...", "AIza..."], disable_seconds=3600)
    key = pool.acquire()             # a usable Key, or None when none is
    pool.penalise(key, verdict)      # after a failed attempt (see app.classify)
    pool.succeeded(key)              # after Gemini accepted the call

State lives in this process only, like the rotation itself: each gunicorn worker learns about a
key's trouble from its own calls.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .classify import DISABLING, UPSTREAM_ERROR_COOLDOWN, Kind, Verdict

State = Literal["available", "cooling", "disabled"]
STATES: tuple[State, ...] = ("available", "cooling", "disabled")
# What every key being out of rotation means for the client: Gemini's quota, Gemini's own
# errors, or keys Gemini refuses.
Shortage = Literal["quota", "upstream_error", "disabled"]
QUOTA_KINDS: frozenset[Kind] = frozenset({"quota", "daily_quota"})
# A key lent to a probe has its answer within moments; others are told to come back that soon.
PROBE_WAIT = UPSTREAM_ERROR_COOLDOWN


@dataclass(frozen=True)
class Key:
    """One API key: `id` is what logs and metrics show, `secret` never leaves the upstream call."""

    id: str
    secret: str = field(repr=False)


@dataclass
class _Health:
    until: float = 0.0
    kind: Kind | None = None
    seconds: float = 0.0
    # A disabled key whose time is up is lent to one request at a time to see if it works again.
    probing: bool = False


class KeyPool:
    """Hands out usable keys in turn, starting at an offset taken from the worker's pid."""

    def __init__(
        self,
        secrets: Sequence[str],
        disable_seconds: float,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not secrets:
            raise ValueError("KeyPool needs at least one key")
        if not disable_seconds > 0:
            raise ValueError(f"disable_seconds must be positive, got {disable_seconds!r}")
        self.keys = tuple(Key(f"k{number}", secret) for number, secret in enumerate(secrets, 1))
        self.disable_seconds = disable_seconds
        self._clock = clock
        self._health = {key.id: _Health() for key in self.keys}
        # Each worker builds its pool after the fork, so the pid differs per worker; seeding the
        # counter with it staggers the workers' starting keys instead of all starting at k1.
        self._counter = itertools.count(os.getpid() if seed is None else seed)

    def acquire(self, exclude: Container[str] = ()) -> Key | None:
        """The next usable key not in `exclude` (ids), or None if there is none."""
        now = self._clock()
        start = next(self._counter)
        for offset in range(len(self.keys)):
            key = self.keys[(start + offset) % len(self.keys)]
            health = self._health[key.id]
            if key.id in exclude or health.probing or health.until > now:
                continue
            if health.kind in DISABLING:
                health.probing = True
            return key
        return None

    def succeeded(self, key: Key) -> None:
        """Gemini accepted a call with `key`: a disabled key on probation is back in rotation."""
        health = self._health[key.id]
        if health.probing:
            self._health[key.id] = _Health()

    def release(self, key: Key) -> None:
        """The call with `key` ended with no verdict (the client left): lend it out again."""
        self._health[key.id].probing = False

    def penalise(self, key: Key, verdict: Verdict) -> float | None:
        """Take `key` out of rotation as `verdict` says; return for how many seconds.

        None when nothing changed: the verdict blames the request, or a longer penalty already
        in force stands (a brief fault seen by another request must not bring back a key that
        is out for the day or refused). A probe that meets Gemini's own fault proves nothing:
        the key stays disabled, to be probed again after the brief pause.
        """
        if not verdict.retryable:
            self.release(key)
            return None
        now = self._clock()
        seconds = self.disable_seconds if verdict.cooldown is None else verdict.cooldown
        current = self._health[key.id]
        if current.until > now + seconds:
            return None
        kind = verdict.kind
        if current.probing and kind not in DISABLING:
            kind = current.kind or kind
        self._health[key.id] = _Health(now + seconds, kind, seconds)
        return seconds

    def state(self, key: Key) -> State:
        """How this worker sees `key` right now."""
        health = self._health[key.id]
        if health.until <= self._clock() and not health.probing:
            return "available"
        return "disabled" if health.kind in DISABLING else "cooling"

    def counts(self) -> dict[State, int]:
        states = [self.state(key) for key in self.keys]
        return {state: states.count(state) for state in STATES}

    def shortage(self) -> tuple[Shortage, float]:
        """Why no key is usable, and the seconds until the first one is again."""
        now = self._clock()
        waits = [
            max(health.until - now, 0.0) if not health.probing else PROBE_WAIT
            for health in self._health.values()
        ]
        kinds = {health.kind for health in self._health.values()}
        if kinds & QUOTA_KINDS:
            why: Shortage = "quota"
        elif kinds <= DISABLING:
            why = "disabled"
        else:
            why = "upstream_error"
        return why, min(waits)
