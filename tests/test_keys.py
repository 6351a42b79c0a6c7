"""The key pool: ids, round robin, pid seeding, and keys leaving and rejoining the rotation."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable

import gevent
import pytest

from app import shared
from app.classify import UPSTREAM_FAULT, Verdict
from app.keys import EVERY_MODEL, PROBE_WAIT, Key, KeyPool, Outage
from app.logs import LOGGER
from app.shared import CIRCUIT_SECONDS, PENALTIES, SharedKeyState, redis_client
from tests.redis_server import RedisServer
from tests.servers import wait_for

SECRETS = ["secret-a", "secret-b", "secret-c"]
QUOTA_30S = Verdict("quota", 30.0)
INVALID = Verdict("invalid_key", None)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


PoolOf = Callable[..., KeyPool]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["in-process", "redis"])
def pool_of(request: pytest.FixtureRequest, clock: Clock) -> PoolOf:
    """Makes pools of either backend: every behaviour below holds for both."""

    def make(secrets: list[str] = SECRETS, seed: int = 0, on: Clock = clock) -> KeyPool:
        shared = None
        if request.param == "redis":
            server = request.getfixturevalue("redis_server")
            shared = SharedKeyState(redis_client(server.url))
        return KeyPool(secrets, disable_seconds=3600, seed=seed, clock=on, shared=shared)

    return make


def test_keys_are_named_k1_k2_in_order() -> None:
    """Ids follow the list order and the secret never shows in repr."""
    pool = KeyPool(SECRETS, 3600, seed=0)
    assert [key.id for key in pool.keys] == ["k1", "k2", "k3"]
    assert "secret" not in repr(pool.keys[0])


@pytest.mark.parametrize(
    ("secrets", "disable_seconds"),
    [([], 3600), (SECRETS, 0), (SECRETS, -1), (SECRETS, float("nan"))],
)
def test_bad_arguments_are_rejected_at_construction(
    secrets: list[str], disable_seconds: float
) -> None:
    """No keys, or a disable time that is not positive, fails at once."""
    with pytest.raises(ValueError):
        KeyPool(secrets, disable_seconds=disable_seconds)


def test_rotation_is_round_robin_from_the_seed() -> None:
    """Seed 1 starts at k2 and wraps around."""
    pool = KeyPool(SECRETS, 3600, seed=1)
    assert [pool.acquire().id for _ in range(5)] == ["k2", "k3", "k1", "k2", "k3"]


@pytest.mark.parametrize(("pid", "first"), [(300, "k1"), (301, "k2"), (302, "k3")])
def test_default_seed_is_the_process_id(
    monkeypatch: pytest.MonkeyPatch, pid: int, first: str
) -> None:
    """Without a seed the starting key is pid modulo the key count."""
    monkeypatch.setattr(os, "getpid", lambda: pid)
    assert KeyPool(SECRETS, 3600).acquire().id == first


def test_workers_with_consecutive_pids_start_on_different_keys() -> None:
    """Forked workers (pids n, n+1, ...) each start elsewhere, so the first requests spread."""
    firsts = [KeyPool(SECRETS, 3600, seed=pid).acquire().id for pid in range(4000, 4003)]
    assert sorted(firsts) == ["k1", "k2", "k3"]


def test_use_is_even_within_one_across_many_workers() -> None:
    """Any number of requests per worker leaves each key within one use per worker of the rest."""
    workers = [KeyPool(SECRETS, 3600, seed=pid) for pid in (101, 202, 303, 404)]
    uses = Counter(pool.acquire().id for pool in workers for _ in range(100))
    assert max(uses.values()) - min(uses.values()) <= len(workers)
    assert sum(uses.values()) == 400


def test_excluded_keys_are_skipped_for_the_next_one(pool_of: PoolOf, clock: Clock) -> None:
    """A request's retry never gets a key it already tried."""
    pool = pool_of()
    assert pool.acquire(exclude={"k1"}).id == "k2"
    assert pool.acquire(exclude={"k1", "k2", "k3"}) is None


def test_a_cooling_key_is_skipped_until_its_time_is_up(pool_of: PoolOf, clock: Clock) -> None:
    """A 30 s quota cooldown: the others serve for 30 s, then the key is back in turn."""
    pool = pool_of()
    k1 = pool.keys[0]
    assert pool.penalise(k1, QUOTA_30S) == 30.0
    assert "k1" not in {pool.acquire().id for _ in range(6)}
    assert pool.state(k1) == "cooling"
    clock.now += 30
    assert pool.state(k1) == "available"
    assert "k1" in {pool.acquire().id for _ in range(3)}


def test_a_disabled_key_waits_disable_seconds_then_one_request_probes_it(
    pool_of: PoolOf, clock: Clock
) -> None:
    """After KEY_DISABLE_SECONDS one request may try the key; others wait for its answer."""
    pool = pool_of(["only-key"])
    (key,) = pool.keys
    assert pool.penalise(key, INVALID) == 3600
    assert pool.acquire() is None and pool.state(key) == "disabled"
    clock.now += 3600
    assert pool.acquire() is key  # the probe
    assert pool.acquire() is None  # nobody else while it runs
    pool.penalise(key, INVALID)  # still invalid: out for another period
    clock.now += 3599
    assert pool.acquire() is None
    clock.now += 1
    assert pool.acquire() is key
    pool.succeeded(key)  # it works again
    assert [pool.acquire(), pool.acquire()] == [key, key]


def probing(pool_of: PoolOf, clock: Clock) -> tuple[KeyPool, Key]:
    """A one-key pool whose key, disabled an hour ago, is now lent to a probe."""
    pool = pool_of(["only-key"])
    (key,) = pool.keys
    pool.penalise(key, INVALID)
    clock.now += 3600
    assert pool.acquire() is key
    return pool, key


def test_a_probe_whose_request_ends_without_a_verdict_is_lent_again(
    pool_of: PoolOf, clock: Clock
) -> None:
    """A client leaving mid-probe does not cost the key another disable period."""
    pool, key = probing(pool_of, clock)
    pool.release(key)
    assert pool.acquire() is key


def test_a_client_error_leaves_the_key_alone(pool_of: PoolOf, clock: Clock) -> None:
    """A 400 about the body says nothing about the key."""
    pool = pool_of()
    assert pool.penalise(pool.keys[0], Verdict("client_error")) is None
    assert pool.counts() == {"available": 3, "cooling": 0, "disabled": 0}


def test_counts_report_each_state(pool_of: PoolOf, clock: Clock) -> None:
    """/health's numbers: available, cooling, disabled."""
    pool = pool_of()
    pool.penalise(pool.keys[0], QUOTA_30S)
    pool.penalise(pool.keys[1], INVALID)
    assert pool.counts() == {"available": 1, "cooling": 1, "disabled": 1}


@pytest.mark.parametrize(
    ("verdicts", "why", "wait"),
    [
        ([QUOTA_30S, Verdict("quota", 10.0), INVALID], "quota", 10.0),
        ([UPSTREAM_FAULT, UPSTREAM_FAULT, INVALID], "upstream_error", 2.0),
        ([INVALID, Verdict("forbidden", None), INVALID], "disabled", 3600.0),
        ([QUOTA_30S, UPSTREAM_FAULT, INVALID], "quota", 2.0),
    ],
    ids=["quota", "gemini-errors", "all-refused", "mixed"],
)
def test_a_shortage_says_why_and_when_the_first_key_is_back(
    pool_of: PoolOf, clock: Clock, verdicts: list[Verdict], why: str, wait: float
) -> None:
    """429 when quota is why, 503 for Gemini's errors, 500 when every key is refused."""
    pool = pool_of()
    for key, verdict in zip(pool.keys, verdicts, strict=True):
        pool.penalise(key, verdict)
    assert pool.acquire() is None
    assert pool.shortage() == (why, wait)


def test_a_brief_fault_never_shortens_a_longer_penalty(pool_of: PoolOf, clock: Clock) -> None:
    """A 2 s Gemini fault seen by another request leaves a daily-quota key out for the day."""
    pool = pool_of()
    k1 = pool.keys[0]
    pool.penalise(k1, Verdict("daily_quota", 20 * 3600.0))
    assert pool.penalise(k1, UPSTREAM_FAULT) is None
    clock.now += 60
    assert pool.state(k1) == "cooling"


def test_while_a_probe_runs_others_are_told_to_retry_soon_not_in_an_hour(
    pool_of: PoolOf, clock: Clock
) -> None:
    """Retry-After during a probe is a few seconds: its answer is moments away."""
    pool, _ = probing(pool_of, clock)
    assert pool.shortage() == ("disabled", PROBE_WAIT)


def test_a_probe_meeting_geminis_own_fault_leaves_the_key_disabled(
    pool_of: PoolOf, clock: Clock
) -> None:
    """A 503 on the probe proves nothing: after the brief pause the key is probed again, not
    handed to everyone."""
    pool, key = probing(pool_of, clock)
    pool.penalise(key, UPSTREAM_FAULT)
    assert pool.state(key) == "disabled"
    clock.now += 2
    assert pool.acquire() is key  # the next probe
    assert pool.acquire() is None


# --- Cooldowns by model --------------------------------------------------------------------------

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"


@pytest.mark.parametrize(
    ("verdict", "request_model"),
    [(Verdict("quota", 30.0, PRO), FLASH), (Verdict("quota", 30.0), PRO),
     (Verdict("daily_quota", 3600.0, PRO), None)],
    ids=["model-named-by-gemini", "request-model", "daily-quota"],
)  # fmt: skip
def test_a_quota_benches_the_key_for_its_model_only(
    pool_of: PoolOf, clock: Clock, verdict: Verdict, request_model: str | None
) -> None:
    """Gemini's quotas are per model: out for pro, the key still serves flash."""
    pool = pool_of()
    k1 = pool.keys[0]
    pool.penalise(k1, verdict, request_model)
    assert "k1" not in {pool.acquire(model=PRO).id for _ in range(6)}
    assert "k1" in {pool.acquire(model=FLASH).id for _ in range(3)}
    assert (pool.state(k1, PRO), pool.state(k1, FLASH)) == ("cooling", "available")
    assert pool.counts(PRO)["available"] == 2 and pool.counts(FLASH)["available"] == 3


@pytest.mark.parametrize(
    ("verdict", "state"),
    [(INVALID, "disabled"), (Verdict("forbidden", None), "disabled"), (UPSTREAM_FAULT, "cooling")],
    ids=["invalid", "forbidden", "geminis-fault"],
)
def test_a_refused_key_or_geminis_fault_is_out_for_every_model(
    pool_of: PoolOf, clock: Clock, verdict: Verdict, state: str
) -> None:
    """Only quotas are per model: a refusal or a 5xx takes the key out whatever the model."""
    pool = pool_of()
    k1 = pool.keys[0]
    pool.penalise(k1, verdict, PRO)
    for model in (PRO, FLASH, None):
        assert pool.state(k1, model) == state
        assert "k1" not in {pool.acquire(model=model).id for _ in range(6)}


def test_a_long_quota_for_a_model_is_not_shortened_by_a_later_short_one(
    pool_of: PoolOf, clock: Clock
) -> None:
    """Out for the day for pro: a per-minute 429 on pro later leaves it out for the day."""
    pool = pool_of()
    k1 = pool.keys[0]
    assert pool.penalise(k1, Verdict("daily_quota", 20 * 3600.0, PRO)) == 20 * 3600.0
    assert pool.penalise(k1, Verdict("quota", 30.0, PRO)) is None
    clock.now += 60
    assert pool.state(k1, PRO) == "cooling"


def test_a_shortage_for_a_model_counts_that_models_penalties_only(
    pool_of: PoolOf, clock: Clock
) -> None:
    """Every key out for pro: pro's requests get quota and its wait; flash has keys."""
    pool = pool_of()
    for key, seconds in zip(pool.keys, (30.0, 10.0, 20.0), strict=True):
        pool.penalise(key, Verdict("quota", seconds, PRO))
    assert pool.acquire(model=PRO) is None
    assert pool.shortage(PRO) == ("quota", 10.0)
    assert pool.acquire(model=FLASH) is not None


def test_a_key_out_for_its_model_and_for_every_model_is_back_when_both_end(
    pool_of: PoolOf, clock: Clock
) -> None:
    """The wait a shortage reports is the later of the key's penalties in force."""
    pool = pool_of(["only-key"])
    (key,) = pool.keys
    pool.penalise(key, Verdict("quota", 30.0, PRO))
    pool.penalise(key, UPSTREAM_FAULT)
    assert pool.shortage(PRO) == ("quota", 30.0)
    assert pool.shortage(FLASH) == ("upstream_error", 2.0)


def test_a_probe_meeting_a_quota_leaves_the_key_disabled_for_every_model(
    pool_of: PoolOf, clock: Clock
) -> None:
    """A probe's verdict is about the key: a 429 on it does not turn a refusal into a quota."""
    pool, key = probing(pool_of, clock)
    assert pool.reach(key, Verdict("quota", 30.0, PRO)) is None
    pool.penalise(key, Verdict("quota", 30.0, PRO), PRO)
    assert pool.state(key, FLASH) == "disabled"


def test_outages_say_what_is_out_for_which_model_by_key_id(pool_of: PoolOf, clock: Clock) -> None:
    """/health's list: key id, model (* for every model), state, reason, seconds left."""
    pool = pool_of()
    k1, k2, _ = pool.keys
    pool.penalise(k2, INVALID)
    pool.penalise(k1, Verdict("quota", 30.0, PRO))
    pool.penalise(k1, Verdict("quota", 5.0, FLASH))
    clock.now += 1
    assert pool.outages() == [
        Outage("k1", FLASH, "cooling", "quota", 4.0),
        Outage("k1", PRO, "cooling", "quota", 29.0),
        Outage("k2", EVERY_MODEL, "disabled", "invalid_key", 3599.0),
    ]
    clock.now += 4
    assert [(o.key, o.model) for o in pool.outages()] == [("k1", PRO), ("k2", EVERY_MODEL)]
    assert "secret" not in repr(pool.outages())


# --- Shared through Redis: several pools, as workers of several instances -----------------------


@pytest.fixture
def shared_pools(redis_server: RedisServer, clock: Clock) -> Callable[..., KeyPool]:
    """Pools sharing one real redis-server, each on its own clock if given, like separate hosts."""

    def make(
        on: Clock = clock, seed: int = 0, probe_lease: float = 60.0, disable_seconds: float = 3600
    ) -> KeyPool:
        shared = SharedKeyState(redis_client(redis_server.url), clock=on, probe_lease=probe_lease)
        return KeyPool(SECRETS, disable_seconds, seed=seed, clock=on, shared=shared)

    return make


@pytest.mark.parametrize(
    "order", [("long", "short"), ("short", "long")], ids=["long-first", "short-first"]
)
def test_a_long_penalty_is_not_shortened_by_another_pools_short_one(
    shared_pools: Callable[..., KeyPool], clock: Clock, order: tuple[str, str]
) -> None:
    """Out for the day on one instance, a per-minute 429 on another leaves it out for the day."""
    verdicts = {"long": Verdict("daily_quota", 20 * 3600.0, PRO), "short": Verdict("quota", 30.0)}
    first, second = shared_pools(), shared_pools()
    first.penalise(first.keys[0], verdicts[order[0]], PRO)
    second.penalise(second.keys[0], verdicts[order[1]], PRO)
    for pool in (first, second):
        pool.refresh()
    clock.now += 3600
    assert first.state(first.keys[0], PRO) == second.state(second.keys[0], PRO) == "cooling"


def test_one_pools_429_makes_the_other_skip_the_key_for_that_model_only(
    shared_pools: Callable[..., KeyPool], redis_server: RedisServer
) -> None:
    """The other worker skips k1 for pro without calling it, and still uses it for flash; Redis
    holds fingerprints, never a key."""
    first, second = shared_pools(), shared_pools(seed=1)
    first.penalise(first.keys[0], Verdict("quota", 30.0, PRO))
    second.refresh()
    assert "k1" not in {second.acquire(model=PRO).id for _ in range(6)}
    assert "k1" in {second.acquire(model=FLASH).id for _ in range(3)}
    stored = redis_server.stored()
    assert PENALTIES in stored and not any(secret in stored for secret in SECRETS)


def test_a_pool_started_later_sees_a_cooldown_set_before_it(
    shared_pools: Callable[..., KeyPool],
) -> None:
    """A restarted worker or instance starts knowing what the fleet knows."""
    shared_pools().penalise(KeyPool(SECRETS, 3600).keys[0], INVALID)
    later = shared_pools()
    later.refresh()
    assert later.state(later.keys[0], FLASH) == "disabled"


def test_two_pools_race_for_a_probe_and_one_wins_and_a_dead_holders_lease_lapses(
    shared_pools: Callable[..., KeyPool], clock: Clock
) -> None:
    """One probe of a disabled key in the whole fleet; a holder that died frees it by itself."""
    lease = 0.2
    pools = [shared_pools(probe_lease=lease) for _ in range(2)]
    for pool in pools:
        pool.penalise(pool.keys[0], INVALID)
    clock.now += 3600
    winners = [pool.acquire(exclude={"k2", "k3"}) for pool in pools]
    assert sorted(str(key) for key in winners) == ["Key(id='k1')", "None"]
    loser = pools[winners.index(None)]
    # The loser counts the key out until the probe has had time to answer, as /health says.
    assert loser.outages() == [Outage("k1", EVERY_MODEL, "disabled", "invalid_key", PROBE_WAIT)]

    def probe_again() -> bool:
        clock.now += PROBE_WAIT
        return loser.acquire(exclude={"k2", "k3"}) is not None

    # The winner never answers (its worker died): the lease lapses and the other may probe.
    wait_for(probe_again, timeout=10 * lease + 5)


def test_a_refused_keys_time_up_is_one_probe_in_the_fleet_not_its_return(
    shared_pools: Callable[..., KeyPool], clock: Clock
) -> None:
    """Its time up on Redis' clock, a refused key comes back only through a probe: one pool
    probes, the others skip it, and once the probe succeeds every pool has it back."""
    pools = [shared_pools(disable_seconds=0.2) for _ in range(2)]
    pools[0].penalise(pools[0].keys[0], INVALID)
    time.sleep(0.3)  # Redis' clock, not the pools', ends the penalty
    clock.now += 1
    # Another penalty written meanwhile clears ended entries from Redis: not a refused key's.
    pools[1].penalise(pools[1].keys[1], QUOTA_30S, PRO)
    for pool in pools:
        pool.refresh()
    probes = [pool.acquire(exclude={"k2", "k3"}) for pool in pools]
    assert sorted(str(key) for key in probes) == ["Key(id='k1')", "None"]
    loser = probes.index(None)
    prober, other = pools[1 - loser], pools[loser]
    prober.succeeded(prober.keys[0])
    clock.now += PROBE_WAIT
    other.refresh()
    assert other.acquire(exclude={"k2", "k3"}) == other.keys[0]


def test_a_probes_verdict_under_a_longer_penalty_ends_the_probe(
    shared_pools: Callable[..., KeyPool], clock: Clock
) -> None:
    """While one pool probes a key, another refuses it anew: the probe's brief fault leaves the
    new deadline in force and the probe over, so the key is probed again once that ends."""
    prober, other = shared_pools(disable_seconds=0.2), shared_pools()
    prober.penalise(prober.keys[0], INVALID)
    time.sleep(0.3)
    clock.now += 1
    key = prober.acquire(exclude={"k2", "k3"})
    other.penalise(other.keys[0], INVALID)
    prober.refresh()
    assert prober.penalise(key, UPSTREAM_FAULT) is None
    [outage] = prober.outages()
    assert outage.state == "disabled" and outage.seconds > 3500
    clock.now += 3600
    assert prober.acquire(exclude={"k2", "k3"}) == key


def test_a_pool_takes_the_reason_of_the_longer_penalty_redis_keeps(
    shared_pools: Callable[..., KeyPool],
) -> None:
    """Refused on one instance, the key meets a brief fault on another that has not followed
    Redis yet: it is refused there too (a probe brings it back, not the brief fault's end)."""
    first, second = shared_pools(), shared_pools()
    first.penalise(first.keys[0], INVALID)
    assert second.penalise(second.keys[0], UPSTREAM_FAULT) == pytest.approx(3600, abs=1)
    assert second.state(second.keys[0]) == "disabled"


def test_an_entry_this_version_cannot_read_is_passed_over(
    shared_pools: Callable[..., KeyPool], redis_server: RedisServer
) -> None:
    """Another version's entry (or a hand-made one) does not stop a pool following the rest."""
    redis_client(redis_server.url).hset(PENALTIES, "0123456789abcdef|*", "soon|invalid_key")
    shared_pools().penalise(KeyPool(SECRETS, 3600).keys[0], INVALID)
    later = shared_pools()
    later.refresh()
    assert later.state(later.keys[0]) == "disabled"


def test_the_mirror_outlives_a_refresh_that_fails(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in one refresh is logged; the background greenlet goes on following Redis."""
    monkeypatch.setattr(shared, "REFRESH_SECONDS", 0.01)

    class Flaky:
        calls = 0

        def refresh(self) -> None:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("a bug")

    flaky = Flaky()
    greenlet = shared.follow(flaky.refresh)
    wait_for(lambda: gevent.sleep(0.01) or flaky.calls >= 3)
    greenlet.kill()
    assert "shared key state refresh failed" in caplog.text


def test_a_skewed_local_clock_changes_nothing(shared_pools: Callable[..., KeyPool]) -> None:
    """Deadlines are Redis' own: a host whose clock is days off sees the same 30 s."""
    here, skewed = Clock(), Clock()
    skewed.now += 3 * 24 * 3600
    shared_pools(on=here).penalise(KeyPool(SECRETS, 3600).keys[0], Verdict("quota", 30.0, PRO))
    other = shared_pools(on=skewed)
    other.refresh()
    skewed.now += 29
    assert other.state(other.keys[0], PRO) == "cooling"
    skewed.now += 1
    assert other.state(other.keys[0], PRO) == "available"


def test_redis_down_costs_nothing_and_its_return_resyncs(
    shared_pools: Callable[..., KeyPool],
    redis_server: RedisServer,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis killed: the pool goes on alone (one log line); back: its penalties are published."""
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    pool = shared_pools()
    redis_server.stop()
    assert pool.penalise(pool.keys[0], Verdict("quota", 300.0, PRO)) == 300.0
    assert pool.penalise(pool.keys[1], INVALID) == 3600
    assert "k1" not in {pool.acquire(model=PRO).id for _ in range(6)}
    redis_server.restart()
    pool.refresh()  # the circuit is still open: Redis is left alone
    clock.now += CIRCUIT_SECONDS
    pool.refresh()
    later = shared_pools()
    later.refresh()
    assert later.state(later.keys[0], PRO) == "cooling"
    assert later.state(later.keys[1], FLASH) == "disabled"
    messages = [record.getMessage() for record in caplog.records]
    assert sum("shared key state down" in message for message in messages) == 1
    assert sum("shared key state back" in message for message in messages) == 1
