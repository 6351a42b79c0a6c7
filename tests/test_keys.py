"""Key rotation: ids, round robin, pid seeding and evenness across workers."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from app.keys import KeyRing

SECRETS = ["secret-a", "secret-b", "secret-c"]


def test_keys_are_named_k1_k2_in_order() -> None:
    """Ids follow the list order and the secret never shows in repr."""
    ring = KeyRing(SECRETS, seed=0)
    assert [key.id for key in ring.keys] == ["k1", "k2", "k3"]
    assert "secret" not in repr(ring.keys[0])


def test_rotation_is_round_robin_from_the_seed() -> None:
    """Seed 1 starts at k2 and wraps around."""
    ring = KeyRing(SECRETS, seed=1)
    assert [ring.next().id for _ in range(5)] == ["k2", "k3", "k1", "k2", "k3"]


@pytest.mark.parametrize(("pid", "first"), [(300, "k1"), (301, "k2"), (302, "k3")])
def test_default_seed_is_the_process_id(
    monkeypatch: pytest.MonkeyPatch, pid: int, first: str
) -> None:
    """Without a seed the starting key is pid modulo the key count."""
    monkeypatch.setattr(os, "getpid", lambda: pid)
    assert KeyRing(SECRETS).next().id == first


def test_workers_with_consecutive_pids_start_on_different_keys() -> None:
    """Forked workers (pids n, n+1, ...) each start elsewhere, so the first requests spread."""
    firsts = [KeyRing(SECRETS, seed=pid).next().id for pid in range(4000, 4003)]
    assert sorted(firsts) == ["k1", "k2", "k3"]


def test_use_is_even_within_one_across_many_workers() -> None:
    """Any number of requests per worker leaves each key within one use per worker of the rest."""
    workers = [KeyRing(SECRETS, seed=pid) for pid in (101, 202, 303, 404)]
    uses = Counter(ring.next().id for ring in workers for _ in range(100))
    assert max(uses.values()) - min(uses.values()) <= len(workers)
    assert sum(uses.values()) == 400
