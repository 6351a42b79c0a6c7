"""Keys that fail, streams that break, clients that leave, servers that stop: over real sockets.

Each test that makes a key fail starts its own gunicorn (key state lives in each worker), mostly
with one gevent worker so that "called once" means once, not once per worker.
"""

from __future__ import annotations

import json
import math
import signal
import socket
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.client import (
    KEY_IDS,
    PROMPT,
    assert_json_error,
    calls_per_key,
    cooldowns,
    generate,
    metric,
    request_lines,
    upstream_calls,
)
from tests.servers import KEYS, PASSWORD, REQUEST_TIMEOUT, ProxyServer, configure, control, wait_for

pytestmark = pytest.mark.integration

K1, K2, K3 = KEYS
TWO_KEYS = f"{K1},{K2}"
# A known answer, so a retried stream can be checked for repeated or missing text.
ANSWER = " ".join(f"word{number}" for number in range(120))
KNOWN = {"events": 6, "text": ANSWER}


def health(proxy: ProxyServer, path: str = "/health") -> requests.Response:
    return requests.get(f"{proxy.url}{path}", timeout=REQUEST_TIMEOUT)


def log_line(proxy: ProxyServer, request_id: str) -> dict[str, Any]:
    """The request's one log line, once it is written."""
    wait_for(lambda: request_lines(proxy, {request_id}))
    (line,) = request_lines(proxy, {request_id})
    return line


def final_content(body: list[dict[str, Any]]) -> str:
    """The complete answer's text: the last chunk's content."""
    assert body[-1]["is_complete"] is True, body[-1]
    return body[-1]["content"]


def answers_of_two(proxy: ProxyServer, tag: str) -> tuple[list[list[dict]], list[dict]]:
    """Two requests, so that whichever key this worker's rotation starts on, one begins at k1.

    Returns both bodies and both log lines.
    """
    ids = [f"{tag}-1", f"{tag}-2"]
    bodies = [generate(proxy, headers={"X-Request-ID": rid}).json() for rid in ids]
    return bodies, [log_line(proxy, rid) for rid in ids]


def retry_after(response: requests.Response) -> int:
    return int(response.headers["Retry-After"])


# --- Key health and failover --------------------------------------------------------------------


def test_a_429_key_beside_a_good_one_is_skipped_for_its_retry_delay(start_proxy, sim: str) -> None:
    """Every request succeeds; the 429 key is called once, then left alone while it cools."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=TWO_KEYS)
    configure(sim, {"default": KNOWN, "keys": {K1: {"fault": "quota", "retry_delay": 30}}})
    for index in range(6):
        body = generate(proxy, headers={"X-Request-ID": f"q-{index}"}).json()
        assert final_content(body) == ANSWER
    assert calls_per_key(sim) == {"k1": 1, "k2": 6}
    tried = [log_line(proxy, f"q-{index}")["keys_tried"] for index in range(6)]
    assert ["k1", "k2"] in tried and tried.count(["k2"]) == 5
    assert cooldowns(proxy) == {("k1", "quota"): 1}
    assert metric(proxy, "gemini_proxy_key_available", key="k1") == 0
    assert metric(proxy, "gemini_proxy_key_available", key="k2") == 1
    assert health(proxy).json()["keys"] == {"available": 1, "cooling": 1, "disabled": 0}


PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"


def test_a_429_for_one_model_benches_the_key_for_that_model_only(start_proxy, sim: str) -> None:
    """Gemini's quotas are per model: k1 out of quota for pro is called once for pro, and still
    serves flash; /health and the metrics say k1 is out for pro."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=TWO_KEYS, MODEL_ID=FLASH)
    fault = {"fault": "quota", "retry_delay": 30, "fault_model": PRO}
    configure(sim, {"default": KNOWN, "keys": {K1: fault}})
    # Each model's requests in a row: alternated, one worker's rotation could give every pro
    # request k2 (its counter's parity is the pid's), and k1 would never be asked for pro.
    for model in [PRO] * 4 + [FLASH] * 4:
        response = generate(proxy, params={"model": model})
        assert final_content(response.json()) == ANSWER
    calls = Counter((KEY_IDS[call["key"]], call["model"]) for call in upstream_calls(sim))
    assert calls[("k1", PRO)] == 1 and calls[("k2", PRO)] == 4
    assert calls[("k1", FLASH)] >= 1 and calls[("k1", FLASH)] + calls[("k2", FLASH)] == 4
    (out,) = health(proxy).json()["out"]
    assert (out["key"], out["model"], out["state"], out["reason"]) == (
        "k1",
        PRO,
        "cooling",
        "quota",
    )
    assert health(proxy).json()["keys"] == {"available": 2, "cooling": 0, "disabled": 0}
    assert metric(proxy, "gemini_proxy_key_out", key="k1", model=PRO, state="cooling") == 1
    assert metric(proxy, "gemini_proxy_key_available", key="k1") == 1


def test_an_invalid_key_is_called_once_then_left_alone_until_one_request_probes_it(
    start_proxy, sim: str
) -> None:
    """KEY_DISABLE_SECONDS out of rotation, then a single request tries the key again."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=TWO_KEYS, KEY_DISABLE_SECONDS="1.5")
    configure(sim, {"default": KNOWN, "keys": {K1: {"fault": "invalid_key"}}})
    statuses = [generate(proxy).status_code for _ in range(5)]
    assert statuses == [200] * 5
    assert calls_per_key(sim)["k1"] == 1
    assert health(proxy).json()["keys"] == {"available": 1, "cooling": 0, "disabled": 1}
    wait_for(lambda: health(proxy).json()["keys"]["available"] == 2)
    statuses = [generate(proxy).status_code for _ in range(5)]
    assert statuses == [200] * 5
    assert calls_per_key(sim)["k1"] == 2, "one probe after the disable time, then out again"
    assert cooldowns(proxy) == {("k1", "invalid_key"): 2}


@pytest.mark.parametrize(
    ("fault", "status", "error_status", "longest_wait"),
    [
        ({"fault": "quota", "retry_delay": 30}, 429, "RESOURCE_EXHAUSTED", 30),
        ({"fault": "unavailable"}, 503, "UNAVAILABLE", 2),
        ({"fault": "invalid_key"}, 500, "INTERNAL", 3600),
    ],
    ids=["out-of-quota", "gemini-failing", "all-invalid"],
)
def test_with_every_key_out_the_answer_is_immediate_with_retry_after(
    start_proxy, sim: str, fault: dict, status: int, error_status: str, longest_wait: int
) -> None:
    """Both keys fail; the next request is answered without calling Gemini, Retry-After set."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=TWO_KEYS)
    configure(sim, {"default": fault})
    first = generate(proxy, headers={"X-Request-ID": "first"})
    assert_json_error(first, status)
    assert len(upstream_calls(sim)) == 2
    assert log_line(proxy, "first")["attempts"] == 2
    second = generate(proxy, headers={"X-Request-ID": "second"})
    error = assert_json_error(second, status)
    assert error["status"] == error_status
    assert len(upstream_calls(sim)) == 2, "no call to Gemini while every key is out"
    assert 1 <= retry_after(second) <= longest_wait
    assert log_line(proxy, "second")["attempts"] == 0
    assert metric(proxy, "gemini_proxy_upstream_attempts_bucket", le="0.0") == 1
    assert health(proxy, "/health/ready").status_code == 503
    assert health(proxy).status_code == 200


def test_a_daily_quota_cools_the_key_until_midnight_pacific(start_proxy, sim: str) -> None:
    """A PerDay quotaId: Retry-After runs to the next midnight in Los Angeles."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=K1)
    configure(sim, {"default": {"fault": "daily_quota", "retry_delay": 20}})
    assert_json_error(generate(proxy), 429)
    response = generate(proxy)
    assert_json_error(response, 429)
    pacific = datetime.now(ZoneInfo("America/Los_Angeles"))
    midnight = datetime.combine(pacific.date() + timedelta(days=1), datetime.min.time())
    midnight = midnight.replace(tzinfo=pacific.tzinfo)
    expected = (midnight.astimezone(UTC) - datetime.now(UTC)).total_seconds()
    assert abs(retry_after(response) - expected) <= 5
    assert cooldowns(proxy) == {("k1", "daily_quota"): 1}


@pytest.mark.parametrize("fault", ["unavailable", "internal", "forbidden"])
def test_a_failing_key_is_passed_over_for_the_next_one(start_proxy, sim: str, fault: str) -> None:
    """503, 500 and 403 on k1: the client gets k2's complete answer."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=TWO_KEYS)
    configure(sim, {"default": KNOWN, "keys": {K1: {"fault": fault}}})
    bodies = [generate(proxy).json() for _ in range(2)]
    assert all(final_content(body) == ANSWER for body in bodies)
    assert calls_per_key(sim)["k1"] == 1


def test_attempts_are_bounded_by_max_attempts(start_proxy, sim: str) -> None:
    """Three failing keys, MAX_ATTEMPTS=2: two calls, then Gemini's error with Retry-After."""
    proxy = start_proxy(workers=1, MAX_ATTEMPTS="2")
    configure(sim, {"default": {"fault": "unavailable"}})
    response = generate(proxy, headers={"X-Request-ID": "bounded"})
    assert_json_error(response, 503)
    assert len(upstream_calls(sim)) == 2
    assert log_line(proxy, "bounded")["attempts"] == 2
    assert "Retry-After" not in response.headers, "k3 was still usable"


def test_a_key_quoted_in_gemini_errors_never_reaches_client_or_log(start_proxy, sim: str) -> None:
    """Gemini's 403 names the key ("Consumer 'api_key:…' suspended"); nobody else sees it."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=K1)
    configure(sim, {"default": {"fault": "forbidden"}})
    response = generate(proxy)
    error = assert_json_error(response, 500)
    assert error["key"] == "k1" and "[REDACTED]" in error["upstream"]["message"]
    proxy.stop()
    for text in (response.text, proxy.output()):
        assert K1 not in text and "AIza" not in text


# --- Stream integrity ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        {"cut_after": 1},
        {"error_event_after": 1},
        {"error_event_after": 1, "error_bare": True},
        {"finish_reason": None, "events": 1, "text": "too short to make a chunk"},
    ],
    ids=["cut", "error-event", "bare-error-body", "no-finish-reason"],
)
def test_a_failure_before_the_first_chunk_is_retried_without_repeating_text(
    start_proxy, sim: str, failure: dict
) -> None:
    """k1's stream breaks before 50 tokens went out: one clean answer from k2, text once."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=TWO_KEYS)
    configure(sim, {"default": KNOWN, "keys": {K1: failure}})
    bodies, lines = answers_of_two(proxy, "retried")
    for body in bodies:
        assert final_content(body) == ANSWER
        assert [element["chunk_number"] for element in body] == list(range(1, len(body) + 1))
    assert sorted(line["keys_tried"] for line in lines) == [["k1", "k2"], ["k2"]]
    assert cooldowns(proxy) == {("k1", "upstream_error"): 1}


@pytest.mark.parametrize(
    ("failure", "code", "status"),
    [
        ({"cut_after": 4}, 502, "BAD_GATEWAY"),
        ({"error_event_after": 4}, 503, "UNAVAILABLE"),
        ({"error_event_after": 4, "error_bare": True}, 503, "UNAVAILABLE"),
        (
            {
                "error_event_after": 4,
                "error_body": {"error": {"code": 500, "message": "boom", "status": "INTERNAL"}},
            },
            500,
            "INTERNAL",
        ),
        ({"finish_reason": None}, 502, "BAD_GATEWAY"),
    ],
    ids=["cut", "error-event", "bare-error-body", "error-event-500", "no-finish-reason"],
)
def test_a_failure_after_a_chunk_ends_the_array_with_one_error_element(
    start_proxy, sim: str, failure: dict, code: int, status: str
) -> None:
    """No retry once text went out: the chunks so far, then the error element; valid JSON. The
    key gets the brief pause any Gemini fault earns."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=TWO_KEYS)
    configure(sim, {"default": {**KNOWN, **failure}})
    response = generate(proxy, headers={"X-Request-ID": "broken"})
    assert response.status_code == 200
    body = response.json()
    *chunks, last = body
    assert chunks and all(chunk["is_complete"] is False for chunk in chunks)
    assert ANSWER.startswith(chunks[-1]["content"])
    assert last == {
        "error": {"code": code, "status": status, "message": last["error"]["message"]},
        "is_complete": False,
        "chunk_number": len(body),
    }
    assert len(upstream_calls(sim)) == 1
    line = log_line(proxy, "broken")
    expected = "incomplete" if "finish_reason" in failure else "upstream_error"
    assert (line["outcome"], line["error"]) == (expected, status)
    assert metric(proxy, "gemini_proxy_stream_outcomes_total", outcome=expected) == 1
    assert cooldowns(proxy) == {(line["keys_tried"][0], "upstream_error"): 1}


@pytest.mark.parametrize("stall_after", [0, 4], ids=["before-first-chunk", "mid-stream"])
def test_keepalive_whitespace_fills_a_long_silence_and_the_body_still_parses(
    start_proxy, sim: str, stall_after: int
) -> None:
    """KEEPALIVE_SECONDS of silence from Gemini: a space goes out; the answer is unchanged."""
    proxy = start_proxy(workers=1, KEEPALIVE_SECONDS="0.2")
    configure(sim, {"default": {**KNOWN, "stall_after": stall_after, "stall_seconds": 1.2}})
    response = generate(proxy)
    raw = response.content
    assert response.status_code == 200
    # Before the array opens the spaces lead the body; later they sit between two elements.
    assert raw.startswith(b"  ") if stall_after == 0 else b"}  " in raw
    assert final_content(json.loads(raw)) == ANSWER
    assert len(upstream_calls(sim)) == 1


@pytest.mark.parametrize(
    "behaviour",
    [
        {"thought_events": 12, "delay": 0.1},
        {"hang_before_headers": 1.0},
    ],
    ids=["thinking-events-write-nothing", "headers-slow-to-come"],
)
def test_keepalive_follows_the_clients_silence_not_only_geminis(
    start_proxy, sim: str, behaviour: dict
) -> None:
    """Thought events reach the proxy but write nothing; a call still waiting for its headers
    writes nothing either: spaces go out meanwhile, and the answer is unchanged."""
    proxy = start_proxy(workers=1, KEEPALIVE_SECONDS="0.3")
    configure(sim, {"default": {**KNOWN, **behaviour}})
    raw = generate(proxy).content
    assert raw.startswith(b"  "), raw[:40]
    assert final_content(json.loads(raw)) == ANSWER


def test_a_403_about_the_request_is_the_clients_and_spares_the_keys(start_proxy, sim: str) -> None:
    """A 403 with no reason naming the key (a file of another project): passed through, once."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=TWO_KEYS)
    body = {
        "error": {
            "code": 403,
            "message": "You do not have permission to access the File abc or it may not exist.",
            "status": "PERMISSION_DENIED",
        }
    }
    configure(sim, {"default": {"status": 403, "error_body": body}})
    error = assert_json_error(generate(proxy), 403)
    assert error["message"].startswith("You do not have permission")
    assert len(upstream_calls(sim)) == 1 and cooldowns(proxy) == {}
    assert health(proxy).json()["keys"]["available"] == 2


def test_no_keepalive_while_gemini_keeps_talking(start_proxy, sim: str) -> None:
    """Events every 0.05 s with KEEPALIVE_SECONDS=0.5: the body is the bare array."""
    proxy = start_proxy(workers=1, KEEPALIVE_SECONDS="0.5")
    configure(sim, {"default": {**KNOWN, "delay": 0.05}})
    raw = generate(proxy).content
    assert raw.startswith(b"[{") and b"} " not in raw
    assert final_content(json.loads(raw)) == ANSWER


def test_a_silent_first_key_times_out_and_the_next_one_answers(start_proxy, sim: str) -> None:
    """Gemini accepts on k1 and says nothing for UPSTREAM_TIMEOUT: k2 serves the request."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=TWO_KEYS, UPSTREAM_TIMEOUT="1")
    configure(
        sim,
        {"default": KNOWN, "keys": {K1: {"stall_after": 0, "stall_seconds": 2}}},
    )
    bodies, lines = answers_of_two(proxy, "slow-k1")
    assert [final_content(body) for body in bodies] == [ANSWER, ANSWER]
    assert sorted(line["keys_tried"] for line in lines) == [["k1", "k2"], ["k2"]]


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [({"hang_before_headers": 3}, 504), ({"stall_after": 0}, 504), ({"stall_after": 4}, 200)],
    ids=["no-headers-504", "headers-then-nothing-504", "after-a-chunk-element"],
)
def test_upstream_timeout_is_504_or_the_error_element_once_streaming(
    start_proxy, sim: str, behaviour: dict, code: int
) -> None:
    """UPSTREAM_TIMEOUT=2 with one key: 504 before any chunk, the 504 element after one."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=K1, UPSTREAM_TIMEOUT="2")
    configure(sim, {"default": {**KNOWN, **behaviour, "stall_seconds": 3}})
    response = generate(proxy)
    if code == 504:
        assert_json_error(response, 504)
        return
    body = response.json()
    assert body[0]["content"] and body[-1]["error"]["code"] == 504
    assert body[-1]["error"]["status"] == "DEADLINE_EXCEEDED"


def test_the_failover_deadline_stops_trying_further_keys(start_proxy, sim: str) -> None:
    """FAILOVER_DEADLINE=1.5 with three silent keys and a 1 s timeout: two attempts, then 504."""
    proxy = start_proxy(workers=1, UPSTREAM_TIMEOUT="1", FAILOVER_DEADLINE="1.5")
    configure(sim, {"default": {"stall_after": 0, "stall_seconds": 2.5}})
    assert_json_error(generate(proxy, headers={"X-Request-ID": "deadline"}), 504)
    assert log_line(proxy, "deadline")["attempts"] == 2
    assert len(upstream_calls(sim)) == 2


# --- Clients that leave, servers that stop ------------------------------------------------------


def test_a_client_that_hangs_up_has_its_upstream_closed_promptly(start_proxy, sim: str) -> None:
    """Closing the socket mid-stream: the simulator sees its stream closed within 2 s."""
    proxy = start_proxy(workers=1, KEEPALIVE_SECONDS="0.2")
    configure(sim, {"default": {"events": 40, "delay": 0.1}})
    before = control(sim, "streams")["closed_early"]
    with generate(proxy, stream=True, headers={"X-Request-ID": "gone"}) as response:
        next(response.iter_content(chunk_size=None))
    wait_for(lambda: control(sim, "streams")["closed_early"] == before + 1, timeout=2)
    assert log_line(proxy, "gone")["outcome"] == "client_closed"
    assert metric(proxy, "gemini_proxy_stream_outcomes_total", outcome="client_closed") == 1
    assert cooldowns(proxy) == {}


def test_a_client_that_hangs_up_during_a_silence_is_noticed_at_the_keepalive(
    start_proxy, sim: str
) -> None:
    """Gemini silent for 3 s after the first chunk: a keep-alive write finds the client gone.

    The request's log line is written as its upstream is closed; it appearing while Gemini is
    still silent shows the close did not wait for Gemini's next event.
    """
    proxy = start_proxy(workers=1, KEEPALIVE_SECONDS="0.2")
    configure(sim, {"default": {**KNOWN, "stall_after": 4, "stall_seconds": 3}})
    with generate(proxy, stream=True, headers={"X-Request-ID": "gone-quiet"}) as response:
        next(response.iter_content(chunk_size=None))
    wait_for(lambda: request_lines(proxy, {"gone-quiet"}), timeout=2)
    assert log_line(proxy, "gone-quiet")["outcome"] == "client_closed"


def read_whole(port: int, request: bytes, results: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    results.append(data)


def test_sigterm_lets_30_streams_in_flight_finish_then_exits(start_proxy, sim: str) -> None:
    """graceful_timeout: streams under way complete; new connections are refused; exit 0."""
    proxy = start_proxy()
    configure(sim, {"default": {**KNOWN, "delay": 0.3}})
    body = json.dumps(PROMPT).encode()
    request = (
        f"POST /generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PASSWORD}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    results: list[bytes] = []
    threads = [
        threading.Thread(target=read_whole, args=(proxy.port, request, results)) for _ in range(30)
    ]
    for thread in threads:
        thread.start()
    wait_for(lambda: control(sim, "streams")["open"] == 30)
    proxy.process.send_signal(signal.SIGTERM)
    wait_for(lambda: refused(proxy.port))
    for thread in threads:
        thread.join(30)
    assert proxy.process.wait(30) == 0
    assert len(results) == 30
    for raw in results:
        head, _, chunked = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert final_content(json.loads(dechunk(chunked))) == ANSWER


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    # Reset: the handshake began while the socket still listened, and it closed meanwhile.
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    return False


def dechunk(data: bytes) -> bytes:
    """The body of an HTTP/1.1 chunked transfer."""
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out, data = out + data[:size], data[size + 2 :]


def test_400_concurrent_streams_on_two_workers_all_complete(start_proxy, sim: str) -> None:
    """400 streams at once, each about 1 s long, on 2 gevent workers: every one complete."""
    proxy = start_proxy()
    configure(sim, {"default": {**KNOWN, "delay": 0.15}})

    def one(_: int) -> str:
        return final_content(generate(proxy, timeout=60).json())

    with ThreadPoolExecutor(max_workers=400) as pool:
        answers = list(pool.map(one, range(400)))
    assert answers == [ANSWER] * 400
    assert metric(proxy, "gemini_proxy_stream_outcomes_total", outcome="complete") == 400


# --- Observability ------------------------------------------------------------------------------


def test_health_ready_follows_the_keys_and_health_stays_up(start_proxy, sim: str) -> None:
    """/health/ready is 503 while no key is usable and 200 again once one is; /health stays 200."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=K1, KEY_DISABLE_SECONDS="1")
    assert health(proxy, "/health/ready").json() == {
        "status": "ready",
        "keys": {"available": 1, "cooling": 0, "disabled": 0},
        "out": [],
    }
    configure(sim, {"default": {"fault": "invalid_key"}})
    assert_json_error(generate(proxy), 500)
    not_ready = health(proxy, "/health/ready")
    assert not_ready.status_code == 503 and 1 <= retry_after(not_ready) <= 1
    (out,) = not_ready.json()["out"]
    assert (out["key"], out["model"], out["state"]) == ("k1", "*", "disabled")
    assert health(proxy).json()["keys"] == {"available": 0, "cooling": 0, "disabled": 1}
    wait_for(lambda: health(proxy, "/health/ready").status_code == 200)


def test_key_gauges_recover_on_their_own_when_a_cooldown_ends(start_proxy, sim: str) -> None:
    """No traffic needed: an idle worker republishes a key as available after its cooldown."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=TWO_KEYS)
    configure(sim, {"default": KNOWN, "keys": {K1: {"fault": "quota", "retry_delay": 3}}})
    for _ in range(2):
        generate(proxy).raise_for_status()
    assert metric(proxy, "gemini_proxy_key_available", key="k1") == 0
    wait_for(lambda: metric(proxy, "gemini_proxy_key_available", key="k1") == 1)
    assert math.isclose(metric(proxy, "gemini_proxy_key_available", key="k2"), 1)


def test_the_log_line_names_attempts_keys_and_outcome(start_proxy, sim: str) -> None:
    """attempts, keys_tried (ids only) and outcome are in the request's line."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=TWO_KEYS)
    configure(sim, {"default": KNOWN, "keys": {K1: {"fault": "unavailable"}}})
    _, lines = answers_of_two(proxy, "two-tries")
    facts = sorted((line["attempts"], line["keys_tried"], line["outcome"]) for line in lines)
    assert facts == [(1, ["k2"], "complete"), (2, ["k1", "k2"], "complete")]
