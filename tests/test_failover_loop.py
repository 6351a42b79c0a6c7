"""The attempt loop on a fake Gemini: which key next, what the client gets, what is counted."""

from __future__ import annotations

import json
import time

import pytest

from app.classify import Verdict
from app.errors import UpstreamError, error_body
from app.proxy import Proxy
from app.upstream import UpstreamUnreachable
from tests.fakes import EVENT, FakeStream, by_key, generation, proxy_with, record, slowly


def quota() -> UpstreamError:
    return UpstreamError(429, error_body(429, "quota"), "429", Verdict("quota", 30.0))


def bad_body() -> UpstreamError:
    return UpstreamError(400, error_body(400, "bad field"), "400", Verdict("client_error"))


def scripted(script: dict, keys: int = 2, **settings: float) -> Proxy:
    return proxy_with(by_key(script), keys, **settings)


def slow_scripted(script: dict, keys: int, keepalive: float) -> Proxy:
    """Each call answered as scripted, but only after 0.15 s, like a slow Gemini."""
    return proxy_with(slowly(by_key(script), 0.15), keys, keepalive_seconds=keepalive)


def test_a_quota_error_moves_on_to_the_next_key_and_cools_the_first() -> None:
    """k1 429: the client gets k2's answer; k1 is out for its 30 s."""
    proxy = scripted({"k1": quota(), "k2": FakeStream([EVENT])})
    rec = record()
    body = json.loads(b"".join(generation(proxy, rec)))
    assert body[-1]["content"] == "all of it" and body[-1]["is_complete"]
    assert (rec.keys_tried, rec.outcome) == (["k1", "k2"], "complete")
    assert proxy.pool.state(proxy.pool.keys[0]) == "cooling"


def test_a_clients_error_is_answered_at_once_without_trying_another_key() -> None:
    """A 400 about the body: one call, Gemini's error raised, no key penalised."""
    refusal = bad_body()
    proxy = scripted({"k1": refusal, "k2": FakeStream([EVENT])})
    with pytest.raises(UpstreamError) as caught:
        next(generation(proxy))
    assert caught.value is refusal and caught.value.retry_after is None
    assert proxy.client.keys == ["k1"]
    assert proxy.pool.counts()["available"] == 2


def test_after_keepalive_spaces_a_final_failure_still_ends_as_valid_json() -> None:
    """Spaces already sent commit the 200: the error then comes as the array's only element."""
    cut = UpstreamUnreachable("cut")
    proxy = scripted({"k1": FakeStream([None, cut]), "k2": FakeStream([None, cut])})
    rec = record()
    raw = b"".join(generation(proxy, rec))
    assert raw.startswith(b"  [")
    (element,) = json.loads(raw)
    assert element["error"]["code"] == 502 and element["chunk_number"] == 1
    assert (rec.attempts, rec.outcome) == (2, "upstream_error")


def test_after_keepalive_spaces_the_next_key_still_serves_a_clean_answer() -> None:
    """Spaces are not text: a stream cut before its first chunk is still retried."""
    proxy = scripted(
        {"k1": FakeStream([None, UpstreamUnreachable("cut")]), "k2": FakeStream([EVENT])}
    )
    raw = b"".join(generation(proxy))
    assert raw.startswith(b" [") and json.loads(raw)[-1]["is_complete"]


def test_a_client_leaving_closes_the_upstream_and_spares_the_key() -> None:
    """Closing the body mid-stream: client_closed, upstream closed, key still available."""
    stream = FakeStream([None, None, EVENT])
    proxy = scripted({"k1": stream, "k2": stream})
    rec = record()
    pieces = generation(proxy, rec)
    assert next(pieces) == b" "
    pieces.close()
    assert stream.closed and not stream.reused and rec.outcome == "client_closed"
    assert proxy.pool.counts()["available"] == 2


def test_a_probe_that_ends_without_a_verdict_is_lent_out_again() -> None:
    """A disabled key on probation whose call dies of something else goes back to probation."""
    proxy = scripted({"k1": RuntimeError("bug")}, keys=1)
    key = proxy.pool.keys[0]
    proxy.pool.penalise(key, Verdict("invalid_key", 0.001))
    time.sleep(0.01)
    with pytest.raises(RuntimeError):
        next(generation(proxy))
    assert proxy.pool.acquire() is key


@pytest.mark.parametrize(
    ("verdict", "status"),
    [(Verdict("quota", 30.0), 429), (Verdict("upstream_error", 2.0), 503)],
)
def test_no_usable_key_is_answered_without_a_call(verdict: Verdict, status: int) -> None:
    """Every key out: 429 or 503 at once, with the seconds until the first is back."""
    proxy = scripted({})
    for key in proxy.pool.keys:
        proxy.pool.penalise(key, verdict)
    rec = record()
    with pytest.raises(UpstreamError) as caught:
        next(generation(proxy, rec))
    assert caught.value.status == status and 0 < caught.value.retry_after <= verdict.cooldown
    assert proxy.client.keys == [] and rec.attempts == 0 and rec.outcome is None


def test_a_deadline_already_past_tries_nothing_and_says_so() -> None:
    """FAILOVER_DEADLINE passed (a slow upload) with keys free: 504, no call."""
    proxy = scripted({"k1": FakeStream([EVENT])}, failover_deadline=1.0)
    rec = record()
    rec.started -= 2
    with pytest.raises(UpstreamError) as caught:
        next(generation(proxy, rec))
    assert (
        caught.value.status == 504 and "FAILOVER_DEADLINE" in caught.value.body["error"]["message"]
    )
    assert proxy.client.keys == []


def test_a_refused_key_is_not_what_the_client_hears_when_a_quota_error_was_met() -> None:
    """k1 429 then k2 invalid: the client gets the 429 (it can retry), not the 500."""
    invalid = UpstreamError(
        500, error_body(500, "key k2 refused"), "400", Verdict("invalid_key", None)
    )
    proxy = scripted({"k1": quota(), "k2": invalid})
    with pytest.raises(UpstreamError) as caught:
        next(generation(proxy))
    assert caught.value.status == 429 and caught.value.retry_after is not None


def test_a_complete_answers_upstream_is_released_for_reuse_only_at_close() -> None:
    """Its tail is read after the response is sent (close), never while the client waits."""
    stream = FakeStream([EVENT])
    proxy = scripted({"k1": stream, "k2": stream})
    pieces = generation(proxy)
    assert json.loads(b"".join(pieces))[-1]["is_complete"]
    assert not stream.closed
    pieces.close()
    assert stream.closed and stream.reused


def test_keepalives_go_out_while_gemini_has_not_even_answered() -> None:
    """A call whose headers are slow: spaces meanwhile, then the answer."""
    pieces = generation(slow_scripted({"k1": FakeStream([EVENT])}, keys=1, keepalive=0.1))
    raw = b"".join(pieces)
    pieces.close()
    assert raw.startswith(b" [") and json.loads(raw)[-1]["is_complete"]


def test_an_error_event_refusing_the_key_is_the_proxys_500_naming_it() -> None:
    """API_KEY_INVALID inside k1's stream: k1 disabled; alone, the client gets the 500 form."""
    event = (
        b'data: {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "bad key",'
        b' "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",'
        b' "reason": "API_KEY_INVALID"}]}}\r\n\r\n'
    )
    proxy = scripted({"k1": FakeStream([event])}, keys=1)
    with pytest.raises(UpstreamError) as caught:
        next(generation(proxy))
    assert caught.value.status == 500 and caught.value.body["error"]["key"] == "k1"
    assert proxy.pool.counts()["disabled"] == 1


def test_the_clients_silence_is_counted_across_attempts() -> None:
    """Three keys failing after 0.15 s each, keep-alive at 0.2 s: spaces go out although no
    single attempt was silent that long."""
    unavailable = {f"k{n}": UpstreamError(503, error_body(503, "busy"), "503") for n in (1, 2, 3)}
    pieces = generation(slow_scripted(unavailable, keys=3, keepalive=0.2))
    raw = b"".join(pieces)
    pieces.close()
    assert raw.startswith(b" ") and json.loads(raw)[0]["error"]["code"] == 503


def test_a_bug_after_keepalive_spaces_still_ends_the_body_as_json() -> None:
    """The 200 is committed by the spaces; an unexpected error becomes the INTERNAL element."""
    pieces = generation(slow_scripted({"k1": RuntimeError("bug")}, keys=1, keepalive=0.1))
    raw = b"".join(pieces)
    pieces.close()
    (element,) = json.loads(raw)
    assert element["error"]["status"] == "INTERNAL" and element["is_complete"] is False


def test_the_record_counts_the_last_attempts_tokens_only() -> None:
    """k1 reports tokens and is cut before a chunk, k2 is refused at once: no tokens logged."""
    usage = b'data: {"usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 5}}\r\n\r\n'
    proxy = scripted({"k1": FakeStream([usage, UpstreamUnreachable("cut")]), "k2": quota()})
    rec = record()
    with pytest.raises(UpstreamError):
        next(generation(proxy, rec))
    assert rec.attempts == 2 and (rec.prompt_tokens, rec.total_tokens, rec.chunks) == (
        None,
        None,
        0,
    )
