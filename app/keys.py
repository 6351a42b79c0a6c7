"""The worker's API keys: round-robin choice, skipping keys that are cooling down or disabled.

Usage::

    pool = KeyPool(["AIza...", "AIza..."], disable_seconds=3600)
    key = pool.acquire()             # a usable Key, or None when none is
    key = pool.acquire(model="gemini-2.5-pro")   # usable for that model
    pool.penalise(key, verdict, "gemini-2.5-pro")  # after a failed attempt (see app.classify)
    pool.succeeded(key)              # after Gemini accepted the call

Gemini's quotas are per project and per model, so a quota cooldown benches a key for one model
(the one Gemini's 429 names, else the request's); a refused key or Gemini's own fault takes it
out for every model. State lives in this process, like the rotation itself, unless `shared`
(REDIS_URL) is given: then every worker of every instance follows the same penalties (app.shared).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, cast

from .classify import DISABLING, KINDS, UPSTREAM_ERROR_COOLDOWN, Kind, Verdict

if TYPE_CHECKING:
    from .shared import SharedKeyState

State = Literal["available", "cooling", "disabled"]
STATES: tuple[State, ...] = ("available", "cooling", "disabled")
# What every key being out of rotation means for the client: Gemini's quota, Gemini's own
# errors, or keys Gemini refuses.
Shortage = Literal["quota", "upstream_error", "disabled"]
QUOTA_KINDS: frozenset[Kind] = frozenset({"quota", "daily_quota"})
# A key lent to a probe has its answer within moments; others are told to come back that soon.
PROBE_WAIT = UPSTREAM_ERROR_COOLDOWN
# How /health and the metrics name a penalty that holds for every model.
EVERY_MODEL = "*"


@dataclass(frozen=True)
class Key:
    """One API key: `id` is what logs and metrics show, `secret` never leaves the upstream call."""

    id: str
    secret: str = field(repr=False)


@dataclass
class _Health:
    until: float = 0.0
    kind: Kind | None = None
    # A disabled key whose time is up is lent to one request at a time to see if it works again.
    probing: bool = False


@dataclass(frozen=True)
class Outage:
    """One key out of rotation for one model (EVERY_MODEL for all), as /health shows it."""

    key: str
    model: str
    state: State
    reason: Kind | None
    seconds: float


# A penalty's reach: (key id, model), the model None for every model.
_Scope = tuple[str, str | None]


class KeyPool:
    """Hands out usable keys in turn, starting at an offset taken from the worker's pid."""

    def __init__(
        self,
        secrets: Sequence[str],
        disable_seconds: float,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedKeyState | None = None,
    ) -> None:
        if not secrets:
            raise ValueError("KeyPool needs at least one key")
        if not disable_seconds > 0:
            raise ValueError(f"disable_seconds must be positive, got {disable_seconds!r}")
        self.keys = tuple(Key(f"k{number}", secret) for number, secret in enumerate(secrets, 1))
        self.disable_seconds = disable_seconds
        self._clock = clock
        # Only penalties live here: a key with no entry for a scope is fine in it.
        self._health: dict[_Scope, _Health] = {}
        # With REDIS_URL: penalties go to every worker of every instance, keys named by fingerprint.
        self._shared = shared
        self._fingerprints = {
            key.id: "" if shared is None else shared.fingerprint(key.secret) for key in self.keys
        }
        self._ids = {print_: key_id for key_id, print_ in self._fingerprints.items()}
        # Each worker builds its pool after the fork, so the pid differs per worker; seeding the
        # counter with it staggers the workers' starting keys instead of all starting at k1.
        self._counter = itertools.count(os.getpid() if seed is None else seed)

    def acquire(self, exclude: Container[str] = (), model: str | None = None) -> Key | None:
        """The next key usable for `model` not in `exclude` (ids), or None if there is none."""
        now = self._clock()
        start = next(self._counter)
        for offset in range(len(self.keys)):
            key = self.keys[(start + offset) % len(self.keys)]
            if key.id in exclude or self._in_force(key, model, now):
                continue
            wide = self._health.get((key.id, None))
            if wide is not None and wide.kind in DISABLING:
                if not self._lease(key):
                    # Another worker probes it: look again once that probe has had its answer.
                    wide.until = now + PROBE_WAIT
                    continue
                wide.probing = True
            return key
        return None

    def _lease(self, key: Key) -> bool:
        """Whether this worker may probe `key`: the fleet's one lease, or alone if Redis is out."""
        if self._shared is None:
            return True
        won = self._shared.lease_probe(self._fingerprints[key.id])
        return won is not False

    def succeeded(self, key: Key) -> None:
        """Gemini accepted a call with `key`: a disabled key on probation is back in rotation."""
        wide = self._health.get((key.id, None))
        if wide is not None and wide.probing:
            del self._health[key.id, None]
            if self._shared is not None:
                self._shared.forgive(self._fingerprints[key.id])

    def release(self, key: Key) -> None:
        """The call with `key` ended with no verdict (the client left): lend it out again."""
        wide = self._health.get((key.id, None))
        if wide is not None and wide.probing:
            wide.probing = False
            if self._shared is not None:
                self._shared.end_probe(self._fingerprints[key.id])

    def penalise(self, key: Key, verdict: Verdict, model: str | None = None) -> float | None:
        """Take `key` out of rotation as `verdict` says; return for how many seconds.

        A quota benches the key for the verdict's model, else for `model` (the request's); any
        other fault for every model. None when nothing changed: the verdict blames the request,
        or a longer penalty already in force stands (a brief fault seen by another request must
        not bring back a key that is out for the day or refused). A probe that meets any fault
        but a refusal proves nothing: the key stays disabled, to be probed again after the pause.
        """
        if not verdict.retryable:
            self.release(key)
            return None
        now = self._clock()
        self._forget_ended(now)
        seconds = self.disable_seconds if verdict.cooldown is None else verdict.cooldown
        wide = self._health.get((key.id, None))
        probing = wide is not None and wide.probing
        scope = (key.id, self.reach(key, verdict, model))
        current = self._health.get(scope)
        if current is not None and current.until > now + seconds:
            self.release(key)  # a probe whose verdict changes nothing has still ended
            return None
        kind = verdict.kind
        if probing and kind not in DISABLING:
            kind = wide.kind or kind  # type: ignore[union-attr]  # probing implies wide
        if self._shared is not None:
            print_ = self._fingerprints[key.id]
            # Redis keeps whichever penalty ends later, this worker's or another's.
            in_force = self._shared.penalise(print_, scope[1], kind, seconds, probing)
            if in_force is not None and in_force.kind in KINDS and in_force.seconds > seconds:
                kind, seconds = cast(Kind, in_force.kind), in_force.seconds
            if probing:
                self._shared.end_probe(print_)
        self._health[scope] = _Health(now + seconds, kind)
        return seconds

    def refresh(self) -> None:
        """Follow Redis' penalties (what the background greenlet runs every second).

        Deadlines only move later here. A disabled key whose time is up and that Redis no
        longer lists was probed back by another worker: it is back here too. After an outage,
        this worker's penalties still in force are published first.
        """
        if self._shared is None:
            return
        penalties = self._shared.penalties()
        if self._shared.came_back:
            self._shared.came_back = False
            self._publish_all()
            penalties = self._shared.penalties()
        if penalties is None:
            return
        now = self._clock()
        listed = set()
        for penalty in penalties:
            key_id = self._ids.get(penalty.fingerprint)
            if key_id is None or penalty.kind not in KINDS:
                continue  # another instance's key, or a kind this version does not know
            scope = (key_id, penalty.model)
            listed.add(scope)
            kind, until = cast(Kind, penalty.kind), now + penalty.seconds
            current = self._health.setdefault(scope, _Health(until, kind))
            # In place: a request may hold this entry while it waits for Redis (a probe's lease).
            if current.until < until:
                current.until, current.kind = until, kind
        for scope, health in list(self._health.items()):
            probed_back = health.kind in DISABLING and not health.probing and health.until <= now
            if probed_back and scope not in listed:
                del self._health[scope]

    def _publish_all(self) -> None:
        """Publish every penalty in force here, and refused keys still waiting for a probe."""
        now = self._clock()
        for (key_id, model), health in list(self._health.items()):
            lasting = health.until > now or health.kind in DISABLING
            if lasting and health.kind is not None and self._shared is not None:
                seconds = max(health.until - now, 0.0)
                self._shared.penalise(self._fingerprints[key_id], model, health.kind, seconds)

    def reach(self, key: Key, verdict: Verdict, model: str | None = None) -> str | None:
        """The model `penalise` benches `key` for after `verdict`; None for every model.

        A probe's verdict is about the key itself, whatever the model.
        """
        wide = self._health.get((key.id, None))
        if verdict.kind not in QUOTA_KINDS or (wide is not None and wide.probing):
            return None
        return verdict.model or model

    def state(self, key: Key, model: str | None = None) -> State:
        """How this worker sees `key` for `model` right now (None: for every model alike)."""
        now = self._clock()
        if not self._in_force(key, model, now):
            return "available"
        kinds = {health.kind for health in self._in_force(key, model, now)}
        return "disabled" if kinds & DISABLING else "cooling"

    def counts(self, model: str | None = None) -> dict[State, int]:
        """How many keys are in each state for `model` (None: penalties for every model only)."""
        states = [self.state(key, model) for key in self.keys]
        return {state: states.count(state) for state in STATES}

    def outages(self) -> list[Outage]:
        """Every penalty in force, by key id and model, in key order."""
        now = self._clock()
        order = {key.id: number for number, key in enumerate(self.keys)}
        return [
            Outage(
                key_id,
                EVERY_MODEL if model is None else model,
                "disabled" if health.kind in DISABLING else "cooling",
                health.kind,
                round(PROBE_WAIT if health.probing else health.until - now, 3),
            )
            for (key_id, model), health in sorted(
                self._health.items(), key=lambda item: (order[item[0][0]], item[0][1] or "")
            )
            if health.probing or health.until > now
        ]

    def shortage(self, model: str | None = None) -> tuple[Shortage, float]:
        """Why no key is usable for `model`, and the seconds until the first one is again."""
        now = self._clock()
        waits, kinds = [], set()
        for key in self.keys:
            in_force = self._in_force(key, model, now)
            kinds |= {health.kind for health in in_force}
            waits.append(
                max(
                    (PROBE_WAIT if health.probing else health.until - now for health in in_force),
                    default=0.0,
                )
            )
        if kinds & QUOTA_KINDS:
            why: Shortage = "quota"
        elif kinds and kinds <= DISABLING:
            why = "disabled"
        else:
            why = "upstream_error"
        return why, min(waits)

    def _in_force(self, key: Key, model: str | None, now: float) -> list[_Health]:
        """The penalties that keep `key` from `model` now: its own for every model, and the
        model's own."""
        scopes = [(key.id, None)] if model is None else [(key.id, None), (key.id, model)]
        found = [self._health.get(scope) for scope in scopes]
        return [health for health in found if health and (health.probing or health.until > now)]

    def _forget_ended(self, now: float) -> None:
        """Drop ended penalties, so the models seen over a worker's life do not pile up.

        A disabled key keeps its entry: its end is a probe's success, not the passing of time.
        """
        ended = [
            scope
            for scope, health in self._health.items()
            if health.until <= now and not health.probing and health.kind not in DISABLING
        ]
        for scope in ended:
            del self._health[scope]
