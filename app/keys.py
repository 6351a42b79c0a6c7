"""Round-robin choice of the Gemini API key for each upstream call.

Usage::

    ring = KeyRing(["AIza...", "AIza..."])
    key = ring.next()  # key.id == "k1" or "k2"; key.secret goes only into the upstream header
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Key:
    """One API key: `id` is what logs and metrics show, `secret` never leaves the upstream call."""

    id: str
    secret: str = field(repr=False)


class KeyRing:
    """Hands out keys in turn, starting at an offset taken from the worker's pid."""

    def __init__(self, secrets: Sequence[str], seed: int | None = None) -> None:
        if not secrets:
            raise ValueError("KeyRing needs at least one key")
        self.keys = tuple(Key(f"k{number}", secret) for number, secret in enumerate(secrets, 1))
        # Each worker builds its ring after the fork, so the pid differs per worker; seeding the
        # counter with it staggers the workers' starting keys instead of all starting at k1.
        self._counter = itertools.count(os.getpid() if seed is None else seed)

    def next(self) -> Key:
        """Return the next key in rotation."""
        return self.keys[next(self._counter) % len(self.keys)]
