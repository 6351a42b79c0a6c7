"""The whole proxy over real sockets: gunicorn with 2 gevent workers in front of the simulator."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from simulator import count_prompt_tokens
from tests.client import (
    PROMPT,
    assert_json_error,
    cooldowns,
    generate,
    generate_many,
    metric,
    raw_exchange,
    request_lines,
    served_by,
    upstream_calls,
    upstream_count,
)
from tests.servers import (
    KEYS,
    PASSWORD,
    REQUEST_TIMEOUT,
    ProxyServer,
    configure,
    control,
    wait_for,
)

pytestmark = pytest.mark.integration

BIG_BODY_BYTES = 20 * 1024 * 1024 + 1


# --- Streaming --------------------------------------------------------------------------------


def test_chunks_stream_while_the_upstream_is_still_generating(proxy: ProxyServer, sim: str) -> None:
    """The first chunk reaches the client while the simulator's stream is still open."""
    configure(sim, {"default": {"events": 8, "delay": 0.2}})
    with generate(proxy, stream=True) as response:
        assert response.status_code == 200
        pieces = response.iter_content(chunk_size=None)
        first = next(pieces)
        assert first.startswith(b'[{"content":')
        assert control(sim, "streams")["open"] == 1, "upstream finished before the first chunk"
        assert metric(proxy, "gemini_proxy_in_flight") == 1
        rest = list(pieces)
    body = json.loads(first + b"".join(rest))
    assert len(rest) + 1 == len(body), "each chunk arrives as its own write"
    assert [chunk["chunk_number"] for chunk in body] == list(range(1, len(body) + 1))
    assert body[-1]["is_complete"] is True and len(body) >= 3


def test_the_answer_is_one_json_array_of_cumulative_chunks(proxy: ProxyServer, sim: str) -> None:
    """200, JSON, chunked, unbuffered; chunks follow the rule and the last has all the text."""
    configure(sim, {"default": {"events": 4, "words_per_event": 30}})
    response = generate(proxy)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert response.headers["X-Accel-Buffering"] == "no"
    # Prompt 4 tokens + 30 per event: totals 34, 64, 94, 124. With chunk_token 50 the rule
    # sends a chunk at 64 (threshold then 100), skips 94, and ends with the final one at 124.
    assert count_prompt_tokens(PROMPT) == 4
    body = response.json()
    assert [chunk["total_tokens"] for chunk in body] == [64, 124]
    assert [chunk["is_complete"] for chunk in body] == [False, True]
    final = body[-1]
    assert final["finish_reason"] == "STOP"
    assert final["usage"]["totalTokenCount"] == 124
    assert len(final["content"].split()) == 120
    assert final["content"].startswith(body[0]["content"]) and len(body[0]["content"].split()) == 60


def test_the_request_reaches_gemini_unchanged_with_the_key_in_a_header(
    proxy: ProxyServer, sim: str
) -> None:
    """Unknown and snake_case fields pass through; the key is a header, never in the URL."""
    body = {
        **PROMPT,
        "generation_config": {"max_output_tokens": 99},
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "someFutureField": {"nested": [1, None, "x"], "café": "☕"},
    }
    # Odd spacing, key order and 1.0 would all change if the proxy re-serialised the body.
    raw = json.dumps(body, indent=3, sort_keys=True).replace('"x"', '"x" , 1.0').encode()
    assert generate(proxy, raw).status_code == 200
    (call,) = upstream_calls(sim)
    assert call["body_sha256"] == hashlib.sha256(raw).hexdigest()
    assert call["model"] == "gemini-2.5-flash"
    assert call["query"] == "alt=sse"
    assert call["key"] in KEYS


def test_upstream_connections_are_reused_across_requests(proxy: ProxyServer, sim: str) -> None:
    """Each worker's pooled Session keeps its connection to Gemini: no handshake per request."""
    for _ in range(6):
        generate(proxy).raise_for_status()
    ports = {call["remote_port"] for call in upstream_calls(sim)}
    assert len(upstream_calls(sim)) == 6
    assert len(ports) <= 2, f"{len(ports)} connections for 6 requests on 2 workers"


def test_model_can_be_chosen_per_request(proxy: ProxyServer, sim: str) -> None:
    """?model= overrides MODEL_ID for one request."""
    assert generate(proxy, params={"model": "gemini-2.5-pro"}).status_code == 200
    assert [call["model"] for call in upstream_calls(sim)] == ["gemini-2.5-pro"]


@pytest.mark.parametrize(
    ("finish", "blocked"), [("MAX_TOKENS", None), ("SAFETY", None), (None, "PROHIBITED_CONTENT")]
)
def test_any_end_of_answer_is_a_final_chunk(
    proxy: ProxyServer, sim: str, finish: str | None, blocked: str | None
) -> None:
    """MAX_TOKENS, SAFETY and a blocked prompt all end with is_complete and their reason."""
    configure(sim, {"default": {"finish_reason": finish, "block_reason": blocked}})
    final = generate(proxy).json()[-1]
    assert final["is_complete"] is True
    assert final["finish_reason"] == (finish or blocked)


def test_function_calls_reach_the_client_in_the_final_chunk(proxy: ProxyServer, sim: str) -> None:
    """Non-text parts are passed on unchanged."""
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    configure(sim, {"default": {"parts_extra": [call]}})
    assert generate(proxy).json()[-1]["parts"] == [call]


# --- Keys ---------------------------------------------------------------------------------------


def test_keys_are_used_evenly_across_both_workers(proxy: ProxyServer, sim: str) -> None:
    """Every key is used; per-worker round robin keeps counts within one per worker."""
    configure(sim, {"default": {"events": 2, "delay": 0.02}})
    assert set(generate_many(proxy, "rotation", 60)) == {200}
    ids = {f"rotation-{i}" for i in range(60)}
    wait_for(lambda: len(served_by(proxy, ids)) == 2)
    uses = [sum(call["key"] == key for call in upstream_calls(sim)) for key in KEYS]
    assert sum(uses) == 60
    assert max(uses) - min(uses) <= 2, uses


def sample_labels(name: str) -> dict[str, str]:
    return {"route": "generate", "status": "200"} if name == "gemini_proxy_requests_total" else {}


def test_metrics_sum_requests_over_all_workers(proxy: ProxyServer, sim: str) -> None:
    """/metrics counts every request whichever worker served it and whichever worker scrapes."""
    # Each answer: prompt 4 + 4 events of 30 = 124 tokens, in 2 chunks (at 64, and the final).
    configure(sim, {"default": {"events": 4, "words_per_event": 30}})
    families = (
        "gemini_proxy_requests_total",
        "gemini_proxy_tokens_total",
        "gemini_proxy_chunks_total",
        "gemini_proxy_request_duration_seconds_count",
        "gemini_proxy_first_chunk_seconds_count",
    )
    before = {name: metric(proxy, name, **sample_labels(name)) for name in families}
    sent = 0
    ids: set[str] = set()
    while len(served_by(proxy, ids)) < 2:
        assert sent < 200, "all requests went to one worker"
        assert set(generate_many(proxy, f"metrics-{sent}", 10)) == {200}
        ids |= {f"metrics-{sent}-{i}" for i in range(10)}
        sent += 10
    wait_for(lambda: len(served_by(proxy, ids)) == 2)
    per_request = {"gemini_proxy_tokens_total": 124, "gemini_proxy_chunks_total": 2}
    for _ in range(6):  # several scrapes, so both workers answer /metrics
        for name in families:
            grown = metric(proxy, name, **sample_labels(name)) - before[name]
            assert grown == per_request.get(name, 1) * sent, name
    assert metric(proxy, "gemini_proxy_in_flight") == 0
    for key_id in ("k1", "k2", "k3"):
        assert metric(proxy, "gemini_proxy_upstream_requests_total", key=key_id, status="200") > 0


# --- Refused before Gemini ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "params", "headers"),
    [
        (None, None, None),
        (None, {"password": "wrong"}, None),
        ("wrong", None, None),
        (None, None, {"x-api-key": "wrong"}),
        (None, None, {"Authorization": f"Basic {PASSWORD}"}),
        (None, {"password": ""}, None),
    ],
    ids=["none", "wrong-query", "wrong-bearer", "wrong-x-api-key", "basic-scheme", "empty"],
)
def test_missing_or_wrong_password_is_401_and_nothing_reaches_gemini(
    proxy: ProxyServer, sim: str, password: str | None, params: dict | None, headers: dict | None
) -> None:
    """401 JSON; the simulator sees no call."""
    response = generate(proxy, password=password, params=params, headers=headers)
    assert_json_error(response, 401)
    assert upstream_calls(sim) == []


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"password": PASSWORD}, None),
        (None, {"x-api-key": PASSWORD}),
        (None, {"Authorization": f"bearer {PASSWORD}"}),
        (None, None),
    ],
    ids=["query", "x-api-key", "lowercase-bearer", "bearer"],
)
def test_the_password_is_accepted_in_each_place(
    proxy: ProxyServer, sim: str, params: dict | None, headers: dict | None
) -> None:
    """?password=, x-api-key and Authorization: Bearer all work."""
    password = PASSWORD if params is None and headers is None else None
    response = generate(proxy, password=password, params=params, headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "params", "named"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"\xff\xfe", None, "not valid UTF-8"),
        (b"[1, 2]", None, "must be a JSON object"),
        (b"[" * 50_000, None, "nested too deeply"),
        ({"contents": []}, None, "contents"),
        ({"contents": [{"parts": "hello"}]}, None, "contents.0.parts"),
        ({"prompt": "hi"}, None, "contents"),
        (PROMPT, {"model": "models/gemini-2.5-flash"}, "model"),
        (PROMPT, {"model": "../admin"}, "model"),
        (PROMPT, {"model": "gemini:generateContent"}, "model"),
        (PROMPT, {"model": ""}, "model"),
        (PROMPT, {"model": ".."}, "model"),
        (PROMPT, {"model": "."}, "model"),
        (PROMPT, {"model": "gemini..x"}, "model"),
        (PROMPT, {"model": "a" * 129}, "model"),
    ],
)
def test_bad_input_is_400_naming_the_problem_and_nothing_reaches_gemini(
    proxy: ProxyServer, sim: str, body: Any, params: dict | None, named: str
) -> None:
    """Malformed bodies and bad model names get a 400 that says what is wrong."""
    error = assert_json_error(generate(proxy, body, params=params), 400)
    assert named in error["message"]
    assert upstream_calls(sim) == []


def test_a_body_over_20_mib_is_413(proxy: ProxyServer, sim: str) -> None:
    """Too large is refused from its Content-Length, before anything is forwarded."""
    assert_json_error(generate(proxy, b"x" * BIG_BODY_BYTES), 413)
    assert upstream_calls(sim) == []


@pytest.mark.parametrize(("size", "code"), [(BIG_BODY_BYTES - 1, 200), (BIG_BODY_BYTES, 413)])
def test_a_chunked_body_is_held_to_20_mib_too(
    proxy: ProxyServer, sim: str, size: int, code: int
) -> None:
    """Without a Content-Length the limit holds as the body is read: 20 MiB passes, 1 more not."""
    head, tail = b'{"contents": [{"parts": [{"text": "hi"}]}], "pad": "', b'"}'
    padding = size - len(head) - len(tail)
    piece = b" " * (1024 * 1024)

    def body() -> Iterator[bytes]:
        yield head
        for start in range(0, padding, len(piece)):
            yield piece[: padding - start]
        yield tail

    response = requests.post(
        f"{proxy.url}/generate",
        data=body(),
        headers={"Authorization": f"Bearer {PASSWORD}", "Content-Type": "application/json"},
        timeout=REQUEST_TIMEOUT,
    )
    assert response.status_code == code, response.text[:200]
    assert len(upstream_calls(sim)) == (code == 200)


def test_a_malformed_chunked_body_is_400_not_500(proxy: ProxyServer, sim: str) -> None:
    """A broken chunk size from the client is the client's error."""
    head = (
        f"POST /generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PASSWORD}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    status, body = raw_exchange(proxy, head.encode() + b"zz\r\n{}\r\n0\r\n\r\n")
    assert status == 400
    assert json.loads(body)["error"]["code"] == 400
    assert upstream_calls(sim) == []


KEY_SHAPED = "AIza" + "q" * 35


@pytest.mark.parametrize(
    ("request_text", "code"),
    [
        (f"POST /generate?password={PASSWORD}&key={KEY_SHAPED}&a=b\tc HTTP/1.1\r\n\r\n", 400),
        (f"GET /health HTTP/1.1\r\nHost: x\r\nBad Name{KEY_SHAPED}: v\r\n\r\n", 400),
        (f"GET /{KEY_SHAPED} HTTP/1.1\r\nHost: x\r\nContent-Length: {PASSWORD}\r\n\r\n", 400),
    ],
    ids=["request-line", "header-name", "content-length"],
)
def test_http_gunicorn_cannot_parse_gets_a_json_error_that_echoes_nothing(
    proxy: ProxyServer, request_text: str, code: int
) -> None:
    """gunicorn's own 4xx answers are JSON too, and never quote the password or a key back."""
    status, body = raw_exchange(proxy, request_text.encode())
    assert status == code
    assert json.loads(body)["error"]["code"] == code
    assert PASSWORD.encode() not in body and KEY_SHAPED.encode() not in body


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/generate", 405),
        ("OPTIONS", "/generate", 405),
        ("GET", "/nowhere", 404),
        ("DELETE", "/health", 405),
    ],
)
def test_flasks_own_errors_are_json_too(
    proxy: ProxyServer, method: str, path: str, code: int
) -> None:
    """404 and 405 come in the same JSON shape, and are not counted as generations."""
    counted = metric(proxy, "gemini_proxy_request_duration_seconds_count")
    response = requests.request(method, f"{proxy.url}{path}", timeout=REQUEST_TIMEOUT)
    assert_json_error(response, code)
    assert metric(proxy, "gemini_proxy_request_duration_seconds_count") == counted


# --- Gemini's errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "status"), [(400, "INVALID_ARGUMENT"), (404, "NOT_FOUND")])
def test_gemini_blaming_the_request_passes_through_once_without_retry(
    proxy: ProxyServer, sim: str, code: int, status: str
) -> None:
    """A 400 about the body or a 404 model: Gemini's status and body, one call, no key penalty."""
    configure(sim, {"default": {"status": code}})
    counted, penalties = upstream_count(proxy, str(code)), cooldowns(proxy)
    request_id = f"gemini-error-{code}"
    error = assert_json_error(generate(proxy, headers={"X-Request-ID": request_id}), code)
    assert error["status"] == status
    assert len(upstream_calls(sim)) == 1
    assert upstream_count(proxy, str(code)) == counted + 1
    wait_for(lambda: served_by(proxy, {request_id}))
    (line,) = request_lines(proxy, {request_id})
    assert (line["status"], line["error"], line["attempts"]) == (code, status, 1)
    assert cooldowns(proxy) == penalties, "the key was penalised for the client's error"


def test_a_stream_cut_after_a_chunk_ends_with_an_error_element(
    proxy: ProxyServer, sim: str
) -> None:
    """The body stays valid JSON: the chunks so far, then one error element."""
    configure(sim, {"default": {"events": 6, "cut_after": 4}})
    response = generate(proxy)
    assert response.status_code == 200
    body = response.json()
    assert body[0]["is_complete"] is False and "content" in body[0]
    assert body[-1]["error"]["code"] == 502
    assert body[-1]["is_complete"] is False
    assert body[-1]["chunk_number"] == len(body)


def test_a_stream_without_finish_reason_is_incomplete_not_complete(
    proxy: ProxyServer, sim: str
) -> None:
    """No finishReason at the end: an error element, never is_complete true."""
    configure(sim, {"default": {"events": 4, "finish_reason": None}})
    body = generate(proxy).json()
    assert not any(element["is_complete"] for element in body)
    assert "error" in body[-1]


def test_a_client_that_leaves_closes_the_upstream_and_is_logged_as_such(
    proxy: ProxyServer, sim: str
) -> None:
    """Hanging up mid-stream ends the upstream stream; the log line says CLIENT_CLOSED."""
    configure(sim, {"default": {"events": 40, "words_per_event": 60, "delay": 0.1}})
    closed_before, penalties = control(sim, "streams")["closed_early"], cooldowns(proxy)
    with generate(proxy, stream=True, headers={"X-Request-ID": "leaver"}) as response:
        next(response.iter_content(chunk_size=None))
    wait_for(lambda: control(sim, "streams")["closed_early"] == closed_before + 1)
    wait_for(lambda: served_by(proxy, {"leaver"}))
    (line,) = [line for line in proxy.log_lines() if line.get("request_id") == "leaver"]
    assert line["error"] == "CLIENT_CLOSED" and line["status"] == 200
    assert line["outcome"] == "client_closed"
    assert cooldowns(proxy) == penalties, "the key was penalised for the client leaving"


# --- Health, ids, start-up ----------------------------------------------------------------------


def test_health_answers_without_password_or_gemini(proxy: ProxyServer, sim: str) -> None:
    """/health is 200 JSON with the key counts and model, calls nothing, and is not logged."""
    headers = {"X-Request-ID": "health-check"}
    response = requests.get(f"{proxy.url}/health", headers=headers, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200
    health = response.json()
    assert (health["status"], health["model"]) == ("ok", "gemini-2.5-flash")
    # Earlier tests' broken streams may have paused a key for 2 s; none is refused.
    assert sum(health["keys"].values()) == 3 and health["keys"]["disabled"] == 0
    assert upstream_calls(sim) == []
    generate(proxy, headers={"X-Request-ID": "after-health"}).raise_for_status()
    wait_for(lambda: served_by(proxy, {"after-health"}))
    assert not served_by(proxy, {"health-check"}), "a successful /health wrote a request line"


@pytest.mark.parametrize(
    ("sent", "kept"), [("trace-123.abc", True), ("bad id with spaces", False), (None, False)]
)
def test_request_ids_are_echoed_or_made(proxy: ProxyServer, sent: str | None, kept: bool) -> None:
    """A plain incoming X-Request-ID comes back; otherwise a new one is made."""
    headers = {"X-Request-ID": sent} if sent else {}
    response = requests.get(f"{proxy.url}/health", headers=headers, timeout=REQUEST_TIMEOUT)
    returned = response.headers["X-Request-ID"]
    assert (returned == sent) is kept
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", returned)


# One bad value per variable the start refuses, the server's own (PORT, ...) included.
BAD_SETTINGS = {
    "GEMINI_API_KEY_LIST": " , ",
    "chunk_token": "0",
    "WORKER_CONNECTIONS": "many",
    "WEB_CONCURRENCY": "0",
    "PORT": "99999",
    "ACCESS_LOG": "yes",
}


@pytest.mark.parametrize("variable", BAD_SETTINGS)
def test_a_bad_setting_stops_the_start_with_one_line_naming_it(start_proxy, variable: str) -> None:
    """gunicorn exits non-zero; the log names the variable; no traceback."""
    overrides = {variable: BAD_SETTINGS[variable]}
    proxy = start_proxy(wait=False, **overrides)
    assert proxy.process.wait(30) != 0
    lines = proxy.log_lines()
    errors = [line for line in lines if line.get("variable") == variable]
    assert errors and errors[0]["message"].startswith(f"configuration error: {variable}: ")
    assert "Traceback" not in proxy.output()


@pytest.mark.parametrize(("access_log", "lines"), [("", 0), ("0", 0), ("1", 1)])
def test_gunicorn_adds_its_access_line_only_when_access_log_is_1(
    start_proxy, access_log: str, lines: int
) -> None:
    """By default a request is logged once, by the app; ACCESS_LOG=1 adds gunicorn's line."""
    proxy = start_proxy(workers=1, ACCESS_LOG=access_log)
    generate(proxy, headers={"X-Request-ID": "access-check"}).raise_for_status()
    wait_for(lambda: served_by(proxy, {"access-check"}))
    proxy.stop()
    logged = proxy.log_lines()
    access = [line["message"] for line in logged if line["logger"] == "gunicorn.access"]
    assert bool(access) is bool(lines)  # none at all when off, /health included
    assert sum("/generate" in line and "access-check" in line for line in access) == lines
    assert [line.get("request_id") for line in logged].count("access-check") == 1


def test_each_request_writes_one_json_log_line_with_its_facts(proxy: ProxyServer, sim: str) -> None:
    """Request id, status, key id, model, tokens, chunks and timings, in one line."""
    configure(sim, {"default": {"events": 4, "words_per_event": 30}})
    generate(proxy, headers={"X-Request-ID": "log-line-check"}).raise_for_status()
    wait_for(lambda: served_by(proxy, {"log-line-check"}))
    (line,) = [line for line in proxy.log_lines() if line.get("request_id") == "log-line-check"]
    assert line["status"] == 200 and line["path"] == "/generate"
    assert line["keys_tried"] in (["k1"], ["k2"], ["k3"]) and line["attempts"] == 1
    assert line["outcome"] == "complete" and line["model"] == "gemini-2.5-flash"
    assert (line["prompt_tokens"], line["total_tokens"], line["chunks"]) == (4, 124, 2)
    assert 0 < line["first_chunk_seconds"] <= line["duration_seconds"]


def test_metrics_export_every_documented_family(proxy: ProxyServer, sim: str) -> None:
    """The names operators build dashboards on are all there, in valid exposition format."""
    generate(proxy).raise_for_status()
    text = requests.get(f"{proxy.url}/metrics", timeout=REQUEST_TIMEOUT).text
    for family in (
        "gemini_proxy_requests_total",
        "gemini_proxy_upstream_requests_total",
        "gemini_proxy_tokens_total",
        "gemini_proxy_chunks_total",
        "gemini_proxy_request_duration_seconds_bucket",
        "gemini_proxy_first_chunk_seconds_bucket",
        "gemini_proxy_in_flight",
        "gemini_proxy_key_available",
        "gemini_proxy_upstream_attempts_bucket",
        "gemini_proxy_stream_outcomes_total",
    ):
        assert re.search(f"^{family}[{{ ]", text, re.MULTILINE), family


def booted_workers(proxy: ProxyServer) -> list[int]:
    """Pids of the workers gunicorn booted so far, in order."""
    found = (
        re.fullmatch(r"Booting worker with pid: (\d+)", line["message"])
        for line in proxy.log_lines()
    )
    return [int(match.group(1)) for match in found if match]


def test_killed_workers_lose_no_counts_and_leave_no_stream_in_flight(start_proxy, sim: str) -> None:
    """gunicorn replaces dead workers: their counters stay summed, their live gauges go."""
    proxy = start_proxy()
    wait_for(lambda: len(booted_workers(proxy)) == 2)
    assert generate_many(proxy, "before-kill", 10) == [200] * 10
    configure(sim, {"default": {"events": 50, "words_per_event": 60, "delay": 0.2}})
    with generate(proxy, stream=True) as response:
        next(response.iter_content(chunk_size=None))
        assert metric(proxy, "gemini_proxy_in_flight") == 1
        for pid in booted_workers(proxy):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: len(booted_workers(proxy)) == 4)
    for _ in range(6):  # whichever new worker answers
        assert metric(proxy, "gemini_proxy_requests_total", route="generate", status="200") == 10
        assert metric(proxy, "gemini_proxy_in_flight") == 0


def test_counts_from_an_earlier_run_are_cleared_at_start(
    start_proxy, sim: str, tmp_path: Path
) -> None:
    """A restarted server starts from zero even when its metrics folder is kept (a volume)."""
    first = start_proxy(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    generate(first).raise_for_status()
    wait_for(
        lambda: metric(first, "gemini_proxy_requests_total", route="generate", status="200") == 1
    )
    first.stop()
    assert list(tmp_path.iterdir()), "the operator's folder is kept"
    second = start_proxy(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    assert metric(second, "gemini_proxy_requests_total", route="generate", status="200") == 0


# --- Secrets (last: it reads everything the shared proxy wrote) ---------------------------------


def test_no_key_or_password_in_logs_metrics_or_health(proxy: ProxyServer, sim: str) -> None:
    """Across every request above, nothing the server wrote or served holds a secret."""
    generate(proxy, params={"password": PASSWORD}).raise_for_status()
    # gunicorn logs an invalid request line verbatim, query string and all.
    bad_line = f"POST /generate?password={PASSWORD}&a=b\tc HTTP/1.1\r\nHost: x\r\n\r\n"
    assert raw_exchange(proxy, bad_line.encode())[0] == 400
    wait_for(lambda: "Invalid request" in proxy.output())
    # A password put where a path's name goes is logged as the path: the log line redacts it.
    for misplaced in (f"/v1beta/models/{PASSWORD}?key={PASSWORD}", f"/nowhere/{PASSWORD}"):
        assert requests.get(f"{proxy.url}{misplaced}", timeout=REQUEST_TIMEOUT).status_code == 404
    served = "".join(
        requests.get(f"{proxy.url}{path}", timeout=REQUEST_TIMEOUT).text
        for path in ("/metrics", "/health")
    )
    output = proxy.output()
    access = [line for line in proxy.log_lines() if line["logger"] == "gunicorn.access"]
    assert any("/generate" in line["message"] for line in access), "the access log is on"
    for secret in [*KEYS, PASSWORD]:
        assert secret not in output
        assert secret not in served
    assert all(secret not in call["query"] for call in upstream_calls(sim) for secret in KEYS)
