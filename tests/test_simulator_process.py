"""The simulator as a process, over real sockets: `python -m simulator` on a free loopback port,
called as Gemini's clients call it, scripted through its /_sim/ control API."""

import hashlib
import itertools
import json
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest
import requests
from urllib3.exceptions import ReadTimeoutError

from simulator import (
    DEFAULT_WORDS_PER_EVENT,
    FAULTS,
    Behaviour,
    embedding_values,
    fault_error,
    model_info,
)
from tests.gemini_wire import (
    BATCH_EMBED_PATH,
    CHAT_PATH,
    COUNT_PATH,
    CUSTOM_ERROR,
    EMBED_PATH,
    EMBEDDING_MODEL,
    GENERATE_PATH,
    LISTED_MODELS,
    OPENAI_EMBEDDINGS_PATH,
    OPENAI_MODELS_PATH,
    OPENAI_PREFIX,
    PROMPT,
    STREAM_PATH,
    UNAVAILABLE_BODY,
    answer_text,
    candidate_events,
    detail,
    parse_array,
    parse_openai_sse,
    parse_sse,
    texts,
)
from tests.servers import (
    REPO_ROOT,
    REQUEST_TIMEOUT,
    SHUTDOWN_TIMEOUT,
    configure,
    control,
    start_simulator,
    wait_for,
)

pytestmark = pytest.mark.integration

MODELS_PATH = "/v1beta/models"
# error_body for a mid-stream error, and the error the stream then ends with.
STREAM_ERRORS = [(None, UNAVAILABLE_BODY), (CUSTOM_ERROR, CUSTOM_ERROR)]
# Long enough to tell apart from a no-delay stream, short enough to keep the suite quick.
STALL_SECONDS = 0.5
# The proxy's own modules and what it alone brings in; the simulator needs none of them.
PROXY_MODULES = ("app", "flask", "werkzeug", "requests", "prometheus_client")


def streams_since(base_url: str, before: dict[str, int]) -> dict[str, int]:
    """The growth of each /_sim/streams counter since `before` (they count for the whole run)."""
    return {name: count - before[name] for name, count in control(base_url, "streams").items()}


def call_api(
    base_url: str, method: str, path: str, key: str | None = "test-key", **kwargs: Any
) -> requests.Response:
    """Call one of the simulator's Gemini API methods, sending PROMPT as the body of a POST.

    The key goes where Gemini's clients put it: x-goog-api-key, or on the OpenAI-compatible
    path `Authorization: Bearer`.
    """
    headers = {} if key is None else key_header(path, key)
    if method == "POST":
        kwargs.setdefault("json", PROMPT)
    return requests.request(
        method, f"{base_url}{path}", headers=headers, **{"timeout": REQUEST_TIMEOUT, **kwargs}
    )


def key_header(path: str, key: str) -> dict[str, str]:
    """The header that carries an API key on a path."""
    if path.startswith(OPENAI_PREFIX):
        return {"Authorization": f"Bearer {key}"}
    return {"x-goog-api-key": key}


def stream_sse(base_url: str, key: str | None = "test-key", **kwargs: Any) -> requests.Response:
    """Open a streaming generation with alt=sse, as the proxy does."""
    return call_api(
        base_url, "POST", STREAM_PATH, key, params={"alt": "sse"}, stream=True, **kwargs
    )


def stream_array(base_url: str, key: str = "test-key", **kwargs: Any) -> requests.Response:
    """Open a streaming generation without alt=sse: Gemini's JSON array."""
    return call_api(base_url, "POST", STREAM_PATH, key, stream=True, **kwargs)


def read_until_cut(response: requests.Response) -> bytes:
    """Read a body the simulator cuts off: what arrived before the client's read failed."""
    received = bytearray()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in response.iter_content(chunk_size=None):
            received += chunk
    return bytes(received)


def test_stream_is_crlf_framed_sse_with_prompt_and_usage(sim: str) -> None:
    """A 200 text/event-stream body parses into the configured events, split by CRLF CRLF."""
    with stream_sse(sim) as response:
        raw = response.raw.read()
    events = parse_sse(raw)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert len(events) == 3
    assert {event["modelVersion"] for event in events} == {"gemini-test"}
    assert len({event["responseId"] for event in events}) == 1
    assert events[0]["usageMetadata"]["promptTokenCount"] == 3
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"


def test_stamped_events_carry_their_send_time_in_the_text_too(sim: str) -> None:
    """With stamp, each answer text ends with "@<simSentAt>", which survives into chunks."""
    configure(sim, {"default": {"stamp": True}})
    with stream_sse(sim) as response:
        events = candidate_events(parse_sse(response.raw.read()))
    for event in events:
        text = event["candidates"][0]["content"]["parts"][-1]["text"]
        assert text.endswith(f" @{event['simSentAt']:.6f}")


def test_headers_arrive_before_a_delayed_first_event(sim: str) -> None:
    """Headers are sent at once; first_delay holds back only the first event."""
    first_delay = 0.3
    configure(sim, {"default": {"first_delay": first_delay, "stamp": True}})
    started = time.time()
    with stream_sse(sim) as response:
        headers_after = time.time() - started
        events = parse_sse(response.raw.read())
    assert headers_after < first_delay
    assert events[0]["simSentAt"] - started >= first_delay


@pytest.mark.parametrize(
    ("path", "key", "data", "status", "grpc_status"),
    [
        (STREAM_PATH, None, json.dumps(PROMPT), 403, "PERMISSION_DENIED"),
        (STREAM_PATH, "", json.dumps(PROMPT), 403, "PERMISSION_DENIED"),
        ("/v1beta/models/a%2Fb:streamGenerateContent", "k", json.dumps(PROMPT), 404, "NOT_FOUND"),
        ("/v1beta/models/gemini-test:predict", "k", json.dumps(PROMPT), 404, "NOT_FOUND"),
        ("/v1beta/models", "k", json.dumps(PROMPT), 404, "NOT_FOUND"),
        ("/v1beta/models/gemini-2.5-flash", "k", json.dumps(PROMPT), 404, "NOT_FOUND"),
        (STREAM_PATH, "k", "{not json", 400, "INVALID_ARGUMENT"),
        (GENERATE_PATH, "k", "[1, 2]", 400, "INVALID_ARGUMENT"),
        (COUNT_PATH, "k", "{not json", 400, "INVALID_ARGUMENT"),
        (COUNT_PATH, None, json.dumps(PROMPT), 403, "PERMISSION_DENIED"),
    ],
)
def test_bad_requests_get_gemini_shaped_errors(
    sim: str, path: str, key: str | None, data: str, status: int, grpc_status: str
) -> None:
    """Missing keys, unknown paths or verbs and non-object bodies are refused as Gemini would."""
    headers = {} if key is None else {"x-goog-api-key": key}
    response = requests.post(
        f"{sim}{path}?alt=sse", data=data, headers=headers, timeout=REQUEST_TIMEOUT
    )
    assert response.status_code == status
    assert response.json()["error"]["code"] == status
    assert response.json()["error"]["status"] == grpc_status


@pytest.mark.parametrize(
    ("key", "status", "retry_after"), [("limited-key", 429, "7"), ("other-key", 200, None)]
)
def test_per_key_override_applies_to_that_key_only(
    sim: str, key: str, status: int, retry_after: str | None
) -> None:
    """A key configured for 429 gets it with Retry-After; other keys still stream."""
    configure(sim, {"keys": {"limited-key": {"status": 429, "retry_after": 7}}})
    with stream_sse(sim, key=key) as response:
        assert response.status_code == status
        assert response.headers.get("Retry-After") == retry_after
        if status == 429:
            assert response.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_cut_after_breaks_the_chunked_body_on_the_client(sim: str) -> None:
    """cut_after=N delivers N events, then the connection drops and the client's read fails."""
    configure(sim, {"default": {"events": 5, "cut_after": 2}})
    with stream_sse(sim) as response:
        received = read_until_cut(response)
    assert len(parse_sse(received)) == 2
    assert control(sim, "streams")["cut"] >= 1


def test_cut_after_closes_the_socket_without_the_final_chunk(sim: str) -> None:
    """On the wire, a cut stream ends at EOF without chunked encoding's terminating chunk."""
    configure(sim, {"default": {"cut_after": 1}})
    body = json.dumps(PROMPT).encode()
    request = (
        f"POST {STREAM_PATH}?alt=sse HTTP/1.1\r\nHost: sim\r\nx-goog-api-key: k\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    host, port = sim.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=REQUEST_TIMEOUT) as connection:
        connection.sendall(request + body)
        raw = b"".join(iter(lambda: connection.recv(65536), b""))
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"Transfer-Encoding: chunked" in raw
    assert raw.count(b"data: ") == 1
    assert not raw.endswith(b"0\r\n\r\n")


def test_requests_log_records_key_model_query_and_body_until_cleared(sim: str) -> None:
    """Each call is logged in order with its key, model, query and parsed body."""
    for key in ("first-key", "second-key"):
        stream_sse(sim, key=key).close()
    logged = control(sim, "requests")["requests"]
    assert [entry["key"] for entry in logged] == ["first-key", "second-key"]
    assert logged[0]["model"] == "gemini-test"
    assert logged[0]["path"] == STREAM_PATH
    assert logged[0]["query"] == "alt=sse"
    assert logged[0]["body"] == PROMPT
    requests.delete(f"{sim}/_sim/requests", timeout=REQUEST_TIMEOUT).raise_for_status()
    assert control(sim, "requests") == {"requests": []}


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"default": {"events": 2, "bogus": 1, "other": 2}}, "bogus, other"),
        ({"keys": {"k": {"nope": True}}}, "keys.k: nope"),
        ({"defaults": {}}, "defaults"),
        ({"default": {"events": "many"}}, "default.events"),
        ({"default": {"delay": -1}}, "default.delay"),
    ],
)
def test_behaviour_update_rejects_bad_fields_and_keeps_the_old_config(
    sim: str, config: dict[str, Any], named: str
) -> None:
    """Unknown or ill-typed fields give a 400 naming them; the configuration is unchanged."""
    before = control(sim, "behaviour")
    response = configure(sim, config)
    assert response.status_code == 400
    assert named in response.json()["error"]["message"]
    assert control(sim, "behaviour") == before


def test_streams_counter_sees_a_client_that_closes_early(sim: str) -> None:
    """A client leaving mid-stream is counted as closed_early and the stream is no longer open."""
    configure(sim, {"default": {"events": 200, "delay": 0.01}})
    before = control(sim, "streams")
    with stream_sse(sim) as response:
        next(response.iter_content(chunk_size=None))
        assert control(sim, "streams")["open"] == before["open"] + 1
    wait_for(lambda: control(sim, "streams")["closed_early"] == before["closed_early"] + 1)
    after = control(sim, "streams")
    assert after["open"] == before["open"]
    assert after["opened"] == before["opened"] + 1


def test_health_answers_ok(sim: str) -> None:
    """The health endpoint reports ok."""
    assert control(sim, "health") == {"status": "ok"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_ends_the_process_cleanly_even_with_a_hanging_request(signum: int) -> None:
    """SIGTERM/SIGINT stop the simulator with exit code 0 while a request hangs."""
    process, base_url = start_simulator()
    configure(base_url, {"default": {"hang_before_headers": 3600}})
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=REQUEST_TIMEOUT) as connection:
        connection.sendall(
            f"POST {STREAM_PATH}?alt=sse HTTP/1.1\r\nHost: sim\r\nx-goog-api-key: k\r\n"
            "Content-Length: 2\r\n\r\n{}".encode()
        )
        wait_for(lambda: len(control(base_url, "requests")["requests"]) == 1)
        process.send_signal(signum)
        assert process.wait(SHUTDOWN_TIMEOUT) == 0
    assert json.loads(process.stdout.read().splitlines()[-1]) == {"event": "simulator_stopped"}


def test_python_m_simulator_imports_nothing_of_the_proxy() -> None:
    """The command loads only the simulator: not app/, nor Flask, requests or prometheus_client."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "simulator", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SHUTDOWN_TIMEOUT,
        check=True,
    )
    # -X importtime writes one line per module imported: "import time: self | cumulative | name".
    imported = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines()}
    assert "simulator.server" in imported
    assert not {name for name in imported if name.split(".")[0] in PROXY_MODULES}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_is_answered_as_json_before_any_event(sim: str, fault: str) -> None:
    """A fault is Gemini's HTTP error: its status, a pretty JSON body, for that key only."""
    configure(sim, {"keys": {"faulty-key": {"fault": fault, "retry_delay": 0.5}}})
    before = control(sim, "streams")
    with stream_sse(sim, key="faulty-key") as response:
        raw = response.raw.read()
    expected = fault_error(fault, key="faulty-key", model="gemini-test", retry_delay=0.5)
    assert response.status_code == FAULTS[fault]
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert json.loads(raw) == expected
    assert raw.startswith(b'{\n  "error": {\n')
    assert streams_since(sim, before)["opened"] == 0
    with stream_sse(sim, key="other-key") as other:
        assert len(parse_sse(other.raw.read())) == 3


def test_quota_fault_quotes_the_model_and_retry_delay_and_sends_retry_after(sim: str) -> None:
    """The model comes from the path, retryDelay from retry_delay, Retry-After from retry_after."""
    configure(sim, {"default": {"fault": "quota", "retry_delay": 34.4, "retry_after": 35}})
    with stream_sse(sim) as response:
        error = response.json()
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "35"
    violation = detail(error, "QuotaFailure")["violations"][0]
    assert violation["quotaDimensions"]["model"] == "gemini-test"
    assert detail(error, "RetryInfo")["retryDelay"] == "34.4s"


def test_forbidden_fault_quotes_the_key_of_the_request(sim: str) -> None:
    """The suspended-consumer message carries the very key the request used."""
    configure(sim, {"default": {"fault": "forbidden"}})
    with stream_sse(sim, key="AIza-secret-key") as response:
        message = response.json()["error"]["message"]
    assert response.status_code == 403
    assert "'api_key:AIza-secret-key'" in message


def test_status_with_error_body_is_still_a_pre_stream_http_error(sim: str) -> None:
    """error_body with status answers before any event, even with error_event_after set."""
    configure(sim, {"default": {"status": 429, "error_body": CUSTOM_ERROR, "error_event_after": 1}})
    with stream_sse(sim) as response:
        assert response.status_code == 429
        assert response.json() == CUSTOM_ERROR


@pytest.mark.parametrize("stall_after", [0, 1, 2, 3])
def test_stall_keeps_the_connection_silent_then_goes_on(sim: str, stall_after: int) -> None:
    """After stall_after events nothing comes for stall_seconds; then the rest arrives whole."""
    stall = {"stall_after": stall_after, "stall_seconds": STALL_SECONDS, "stamp": True}
    configure(sim, {"default": stall})
    before = control(sim, "streams")
    started = time.time()
    with stream_sse(sim) as response:
        events = parse_sse(response.raw.read())
    finished = time.time()
    assert response.status_code == 200
    assert len(candidate_events(events)) == 3
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    # The request, each event as sent, the end: the stall is the gap after stall_after events.
    moments = [started, *(event["simSentAt"] for event in events), finished]
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert gaps[stall_after] >= STALL_SECONDS
    assert streams_since(sim, before)["stalled"] == 1


@pytest.mark.parametrize("stall_after", [0, 1])
def test_a_read_timeout_shorter_than_the_stall_fires(sim: str, stall_after: int) -> None:
    """The headers and stall_after events arrive; then a client's short read timeout expires."""
    configure(sim, {"default": {"stall_after": stall_after, "stall_seconds": 3 * STALL_SECONDS}})
    received = []
    with (
        stream_sse(sim, timeout=(REQUEST_TIMEOUT, STALL_SECONDS)) as response,
        pytest.raises(requests.exceptions.ConnectionError) as raised,
    ):
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        received.extend(response.iter_content(chunk_size=None))
    assert isinstance(raised.value.args[0], ReadTimeoutError)
    assert len(parse_sse(b"".join(received))) == stall_after


def test_a_stalled_stream_does_not_hold_up_other_streams(sim: str) -> None:
    """While one key's stream stalls, another key's stream is served from start to end."""
    configure(sim, {"keys": {"stalled-key": {"stall_after": 0, "stall_seconds": 2.0}}})
    before = control(sim, "streams")
    with stream_sse(sim, key="stalled-key") as stalled:
        assert stalled.status_code == 200
        with stream_sse(sim, key="other-key") as other:
            assert len(parse_sse(other.raw.read())) == 3
        # Had the stall blocked the server, the stalled stream would have ended first.
        wait_for(lambda: streams_since(sim, before)["opened"] == 2)
        grown = streams_since(sim, before)
        assert (grown["open"], grown["stalled"]) == (1, 1)


@pytest.mark.parametrize(("error_body", "error"), STREAM_ERRORS)
def test_error_event_after_sends_the_error_body_as_an_event(
    sim: str, error_body: dict[str, Any] | None, error: dict[str, Any]
) -> None:
    """The mid-stream error event is error_body when set, else Gemini's 503."""
    configure(sim, {"default": {"error_event_after": 2, "error_body": error_body}})
    before = control(sim, "streams")
    with stream_sse(sim) as response:
        events = parse_sse(response.raw.read())
    assert len(candidate_events(events)) == 2
    assert events[-1] == error
    assert streams_since(sim, before)["errored"] == 1


@pytest.mark.parametrize(("error_body", "error"), STREAM_ERRORS)
def test_bare_error_ends_the_body_after_the_events(
    sim: str, error_body: dict[str, Any] | None, error: dict[str, Any]
) -> None:
    """error_bare: the events, then the error as indented JSON and a newline, then a clean end."""
    configure(
        sim, {"default": {"error_event_after": 2, "error_bare": True, "error_body": error_body}}
    )
    before = control(sim, "streams")
    with stream_sse(sim) as response:
        raw = response.raw.read()
    events, bare = raw[: raw.rindex(b"\r\n\r\n") + 4], raw[raw.rindex(b"\r\n\r\n") + 4 :]
    assert response.status_code == 200
    assert len(candidate_events(parse_sse(events))) == 2
    assert bare == json.dumps(error, indent=2, ensure_ascii=False).encode() + b"\n"
    assert streams_since(sim, before)["errored"] == 1


def test_a_raw_body_is_streamed_exactly_as_given(sim: str) -> None:
    """raw_body replays a recorded stream byte for byte, CRLFs and all."""
    recorded = 'data: {"candidates": []}\r\n\r\ndata: {"x": "é"}\r\n\r\n'
    configure(sim, {"default": {"raw_body": recorded}})
    with stream_sse(sim) as response:
        assert response.raw.read() == recorded.encode()


# --- Gemini's other methods: the JSON-array stream, generateContent, countTokens, models ---


@pytest.mark.parametrize("query", [{}, {"alt": "json"}])
def test_stream_without_alt_sse_is_gemini_json_array_of_the_same_events(
    sim: str, query: dict[str, str]
) -> None:
    """Without alt=sse (or with alt=json) the events come as Gemini's JSON array, framed exactly."""
    with stream_array(sim, params=query) as response:
        raw = response.raw.read()
    with stream_sse(sim) as sse:
        sse_sent = parse_sse(sse.raw.read())
    events = parse_array(raw)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert raw.count(b"\n,\r\n") == 2
    assert texts(events) == texts(sse_sent)
    assert [event["usageMetadata"] for event in events] == [
        event["usageMetadata"] for event in sse_sent
    ]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"


def test_array_stream_sends_each_element_as_its_event_is_due(sim: str) -> None:
    """Elements arrive paced like SSE events: `[` with the first, the `]` only at the end."""
    configure(sim, {"default": {"stall_after": 1, "stall_seconds": STALL_SECONDS, "stamp": True}})
    received = []
    started = time.time()
    with stream_array(sim) as response:
        for chunk in response.iter_content(chunk_size=None):
            received.append((time.time(), chunk))
    assert len(parse_array(received[0][1] + b"\n]")) == 1
    assert received[-1][1].endswith(b"\n]")
    events = parse_array(b"".join(chunk for _, chunk in received))
    assert events[1]["simSentAt"] - events[0]["simSentAt"] >= STALL_SECONDS
    assert received[0][0] - started < STALL_SECONDS


@pytest.mark.parametrize(("error_body", "error"), STREAM_ERRORS)
@pytest.mark.parametrize("error_bare", [False, True])
def test_error_event_is_the_last_array_element(
    sim: str, error_body: dict[str, Any] | None, error: dict[str, Any], error_bare: bool
) -> None:
    """In the JSON array a mid-stream error is one more element (error_bare has no other form)."""
    behaviour = {"error_event_after": 2, "error_body": error_body, "error_bare": error_bare}
    configure(sim, {"default": behaviour})
    before = control(sim, "streams")
    with stream_array(sim) as response:
        events = parse_array(response.raw.read())
    assert response.status_code == 200
    assert len(candidate_events(events)) == 2
    assert events[-1] == error
    assert streams_since(sim, before)["errored"] == 1


def test_cut_array_stream_breaks_off_without_its_closing_bracket(sim: str) -> None:
    """cut_after=N: `[`, N elements, then the connection drops; `]` never comes."""
    configure(sim, {"default": {"events": 5, "cut_after": 2}})
    with stream_array(sim) as response:
        received = read_until_cut(response)
    assert received.startswith(b"[{") and received.endswith(b"}")
    assert received.count(b"\n,\r\n") == 1
    assert json.loads(received + b"\n]")


def test_an_empty_array_stream_is_an_empty_array(sim: str) -> None:
    """No events at all (events 0): the body is `[]`, still valid JSON."""
    configure(sim, {"default": {"events": 0}})
    with stream_array(sim) as response:
        assert response.raw.read() == b"[]"


@pytest.mark.parametrize(
    ("config", "key", "status", "expected"),
    [
        (
            {"keys": {"k": {"fault": "quota"}}},
            "k",
            429,
            fault_error("quota", key="k", model="gemini-test"),
        ),
        ({"keys": {"k": {"status": 429, "error_body": CUSTOM_ERROR}}}, "k", 429, CUSTOM_ERROR),
        ({}, None, 403, None),
    ],
)
def test_array_stream_errors_come_wrapped_in_an_array(
    sim: str, config: dict[str, Any], key: str | None, status: int, expected: dict[str, Any] | None
) -> None:
    """Before a JSON-array stream, Gemini's HTTP error is the one element of an array."""
    configure(sim, config)
    response = call_api(sim, "POST", STREAM_PATH, key)
    assert response.status_code == status
    (error,) = response.json()
    assert error == (expected or error)
    assert error["error"]["code"] == status
    assert response.content.endswith(b"}\n]")


def test_stream_with_an_unknown_alt_is_refused(sim: str) -> None:
    """alt is sse or json (the default); anything else is Gemini's 400."""
    response = call_api(sim, "POST", STREAM_PATH, params={"alt": "csv"})
    assert response.status_code == 400
    assert "'alt'" in response.json()[0]["error"]["message"]


def test_generate_content_is_one_json_answer_with_the_whole_text(sim: str) -> None:
    """generateContent answers with the merged stream: one text part, Gemini's fields."""
    response = call_api(sim, "POST", GENERATE_PATH)
    answer = response.json()
    (candidate,) = answer["candidates"]
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert candidate == {
        "content": {"parts": [{"text": answer_text(Behaviour(events=3))}], "role": "model"},
        "finishReason": "STOP",
        "index": 0,
    }
    assert answer["usageMetadata"] == {
        "promptTokenCount": 3,
        "candidatesTokenCount": 3 * DEFAULT_WORDS_PER_EVENT,
        "totalTokenCount": 3 + 3 * DEFAULT_WORDS_PER_EVENT,
    }
    assert answer["modelVersion"] == "gemini-test"
    assert answer["responseId"]
    assert list(answer) == ["candidates", "usageMetadata", "modelVersion", "responseId"]


def test_generate_content_waits_first_delay_and_keeps_parts_extra(sim: str) -> None:
    """first_delay holds the whole answer back; parts_extra follow the text part."""
    call = {"functionCall": {"name": "lookup", "args": {"q": "x"}}}
    configure(sim, {"default": {"first_delay": STALL_SECONDS, "parts_extra": [call]}})
    started = time.time()
    response = call_api(sim, "POST", GENERATE_PATH)
    assert time.time() - started >= STALL_SECONDS
    parts = response.json()["candidates"][0]["content"]["parts"]
    assert parts == [{"text": answer_text(Behaviour(events=3))}, call]


def test_generate_content_of_a_blocked_prompt_is_its_prompt_feedback(sim: str) -> None:
    """block_reason: no candidates, promptFeedback with the reason, as in the stream."""
    configure(sim, {"default": {"block_reason": "PROHIBITED_CONTENT"}})
    answer = call_api(sim, "POST", GENERATE_PATH).json()
    assert "candidates" not in answer
    assert answer["promptFeedback"] == {"blockReason": "PROHIBITED_CONTENT"}


@pytest.mark.parametrize(("error_body", "error"), STREAM_ERRORS)
def test_generate_content_fails_whole_where_a_stream_would_break_off(
    sim: str, error_body: dict[str, Any] | None, error: dict[str, Any]
) -> None:
    """error_event_after: with no stream to end, the error is the answer, with its own status."""
    configure(sim, {"default": {"error_event_after": 1, "error_body": error_body}})
    response = call_api(sim, "POST", GENERATE_PATH)
    assert response.status_code == error["error"]["code"]
    assert response.json() == error


@pytest.mark.parametrize(
    ("body", "tokens"),
    [(PROMPT, 3), ({"contents": [{"parts": [{"text": "one two three four"}]}]}, 4), ({}, 1)],
)
def test_count_tokens_counts_the_words_of_the_prompt(
    sim: str, body: dict[str, Any], tokens: int
) -> None:
    """countTokens answers {"totalTokens": N}, N the prompt's words as in promptTokenCount."""
    response = call_api(sim, "POST", COUNT_PATH, json=body)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert response.json() == {"totalTokens": tokens}


def test_models_list_pages_through_every_model(sim: str) -> None:
    """GET /v1beta/models with pageSize hands out nextPageToken until the last page."""
    names, token = [], None
    for _ in LISTED_MODELS:
        params = {"pageSize": 2, **({"pageToken": token} if token else {})}
        page = call_api(sim, "GET", MODELS_PATH, params=params).json()
        names += [model["name"] for model in page["models"]]
        token = page.get("nextPageToken")
        if token is None:
            break
    assert names == [f"models/{name}" for name in LISTED_MODELS]
    full = call_api(sim, "GET", MODELS_PATH).json()
    assert [model["name"] for model in full["models"]] == names
    assert "nextPageToken" not in full


def test_models_list_refuses_a_bad_page_token(sim: str) -> None:
    """A page token the simulator never gave out is Gemini's 400."""
    response = call_api(sim, "GET", MODELS_PATH, params={"pageToken": "nonsense"})
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize("model", LISTED_MODELS)
def test_get_model_describes_a_listed_model(sim: str, model: str) -> None:
    """GET /v1beta/models/{id} is the same object as in the list."""
    response = call_api(sim, "GET", f"{MODELS_PATH}/{model}")
    assert response.status_code == 200
    assert response.json() == model_info(model)


@pytest.mark.parametrize("model", ["gemini-test", "gemini-9.9-ultra", "a.b_c-d"])
def test_get_model_of_an_unknown_id_is_not_found(sim: str, model: str) -> None:
    """An id that could be a model but is not listed is Gemini's 404 NOT_FOUND, naming it."""
    response = call_api(sim, "GET", f"{MODELS_PATH}/{model}")
    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"
    assert f"models/{model}" in response.json()["error"]["message"]


# Every Gemini method the simulator serves, native and OpenAI-compatible: HTTP verb, path (with
# query), the model it names, the body of a POST.
EMBED_BODY = {"content": {"parts": [{"text": "say something nice"}]}}
CHAT_BODY = {"model": "gemini-test", "messages": [{"role": "user", "content": "say hi"}]}
API_CALLS = [
    ("POST", STREAM_PATH + "?alt=sse", "gemini-test", PROMPT),
    ("POST", STREAM_PATH, "gemini-test", PROMPT),
    ("POST", GENERATE_PATH, "gemini-test", PROMPT),
    ("POST", COUNT_PATH, "gemini-test", PROMPT),
    ("POST", EMBED_PATH, EMBEDDING_MODEL, EMBED_BODY),
    ("POST", BATCH_EMBED_PATH, EMBEDDING_MODEL, {"requests": [EMBED_BODY]}),
    ("GET", MODELS_PATH + "?pageSize=2", None, None),
    ("GET", MODELS_PATH + "/gemini-2.5-flash", "gemini-2.5-flash", None),
    ("POST", "/v1" + GENERATE_PATH.removeprefix("/v1beta"), "gemini-test", PROMPT),
    ("GET", "/v1/models/gemini-2.5-flash", "gemini-2.5-flash", None),
    ("POST", CHAT_PATH, "gemini-test", CHAT_BODY),
    ("POST", CHAT_PATH, "gemini-test", {**CHAT_BODY, "stream": True}),
    ("POST", OPENAI_EMBEDDINGS_PATH, EMBEDDING_MODEL, {"model": EMBEDDING_MODEL, "input": "hi"}),
    ("GET", OPENAI_MODELS_PATH, None, None),
    ("GET", OPENAI_MODELS_PATH + "/gemini-2.5-flash", "gemini-2.5-flash", None),
]
NATIVE_CALLS = [call for call in API_CALLS if not call[1].startswith(OPENAI_PREFIX)]
OPENAI_CALLS = [call for call in API_CALLS if call[1].startswith(OPENAI_PREFIX)]
CALL_FIELDS = ("method", "path", "model", "body")
# Short, but long enough to tell a held-back answer from a prompt one.
HANG_SECONDS = 0.3


def error_of(response: requests.Response) -> dict[str, Any]:
    """A Gemini error body, unwrapped from the array that a JSON-array stream puts it in."""
    body = response.json()
    if isinstance(body, list):
        (body,) = body
    return body


@pytest.mark.parametrize(CALL_FIELDS, NATIVE_CALLS)
def test_every_native_method_needs_a_key(
    sim: str, method: str, path: str, model: str | None, body: Any
) -> None:
    """No x-goog-api-key: Gemini's 403 for unregistered callers, whatever the method."""
    response = call_api(sim, method, path, key=None, json=body)
    assert response.status_code == 403
    assert error_of(response)["error"]["message"].startswith("Method doesn't allow unregistered")


@pytest.mark.parametrize(CALL_FIELDS, OPENAI_CALLS)
@pytest.mark.parametrize("headers", [{}, {"x-goog-api-key": "k"}, {"Authorization": "Basic k"}])
def test_every_openai_method_needs_a_bearer_key(
    sim: str, method: str, path: str, model: str | None, body: Any, headers: dict[str, str]
) -> None:
    """On the OpenAI-compatible path only `Authorization: Bearer` counts: else a wrapped 401."""
    response = requests.request(
        method, f"{sim}{path}", json=body, headers=headers, timeout=REQUEST_TIMEOUT
    )
    assert response.status_code == 401
    assert response.json() == [
        {
            "error": {
                "code": 401,
                "message": "Missing or invalid Authorization header.",
                "status": "UNAUTHENTICATED",
            }
        }
    ]


@pytest.mark.parametrize(CALL_FIELDS, API_CALLS)
def test_every_method_gets_the_key_fault_and_status(
    sim: str, method: str, path: str, model: str | None, body: Any
) -> None:
    """A key's fault (with Retry-After) and its status with error_body apply to every method."""
    faults = {
        "quota-key": {"fault": "quota", "retry_delay": 2, "retry_after": 3},
        "status-key": {"status": 503, "error_body": CUSTOM_ERROR},
    }
    configure(sim, {"keys": faults})
    quota = call_api(sim, method, path, key="quota-key", json=body)
    status = call_api(sim, method, path, key="status-key", json=body)
    # The model lists name no model; the quota then names the simulator's own.
    quoted = model or "gemini-sim"
    assert (quota.status_code, quota.headers["Retry-After"]) == (429, "3")
    assert error_of(quota) == fault_error("quota", key="quota-key", model=quoted, retry_delay=2)
    assert (status.status_code, error_of(status)) == (503, CUSTOM_ERROR)
    assert call_api(sim, method, path, key="other-key", json=body).status_code == 200


@pytest.mark.parametrize(CALL_FIELDS, OPENAI_CALLS)
def test_openai_path_errors_are_google_errors_in_a_one_element_array(
    sim: str, method: str, path: str, model: str | None, body: Any
) -> None:
    """As Gemini answers there: `[{"error": ...}]`, pretty-printed, RetryInfo kept, and no
    Retry-After unless the behaviour scripts one."""
    configure(sim, {"default": {"fault": "quota", "retry_delay": 5}})
    response = call_api(sim, method, path, json=body)
    assert response.status_code == 429
    assert "Retry-After" not in response.headers
    assert response.content.startswith(b'[{\n  "error": {\n    "code": 429,')
    assert response.content.endswith(b"}\n]")
    (error,) = response.json()
    assert detail(error, "RetryInfo")["retryDelay"] == "5s"


@pytest.mark.parametrize(CALL_FIELDS, API_CALLS)
def test_every_method_hangs_before_headers(
    sim: str, method: str, path: str, model: str | None, body: Any
) -> None:
    """hang_before_headers holds back the answer of every method, not just the SSE stream."""
    configure(sim, {"default": {"hang_before_headers": HANG_SECONDS}})
    started = time.time()
    response = call_api(sim, method, path, json=body)
    assert response.status_code == 200
    assert time.time() - started >= HANG_SECONDS


def test_requests_log_records_every_method(sim: str) -> None:
    """Each call of each method is logged with its key, model, path, query, body and hash; on
    the OpenAI path the key is the Bearer token and the model the body's."""
    for number, (method, path, _, body) in enumerate(API_CALLS):
        call_api(sim, method, path, key=f"key-{number}", json=body)
    logged = control(sim, "requests")["requests"]
    assert [(entry["key"], entry["model"]) for entry in logged] == [
        (f"key-{number}", model) for number, (_, _, model, _) in enumerate(API_CALLS)
    ]
    assert [(entry["path"], entry["query"]) for entry in logged] == [
        (path.partition("?")[0], path.partition("?")[2]) for _, path, _, _ in API_CALLS
    ]
    assert [entry["body"] for entry in logged] == [body for _, _, _, body in API_CALLS]
    assert [entry["body_sha256"] for entry in logged] == [
        hashlib.sha256(b"" if body is None else json.dumps(body).encode()).hexdigest()
        for _, _, _, body in API_CALLS
    ]


# --- /v1 beside /v1beta, and the embedding methods ---


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", GENERATE_PATH), ("POST", COUNT_PATH), ("GET", MODELS_PATH), ("POST", EMBED_PATH)],
)
def test_v1_answers_as_v1beta_does(sim: str, method: str, path: str) -> None:
    """Gemini serves its native API under /v1 too: the same answers (but for the random id)."""
    body = EMBED_BODY if path == EMBED_PATH else PROMPT
    answers = [
        call_api(sim, method, version + path.removeprefix("/v1beta"), json=body)
        for version in ("/v1beta", "/v1")
    ]
    assert [answer.status_code for answer in answers] == [200, 200]
    beta, v1 = ({**answer.json(), "responseId": None} for answer in answers)
    assert v1 == beta


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_an_unknown_model_is_not_found_for_the_version_asked(sim: str, version: str) -> None:
    """Gemini's 404 names the API version of the call."""
    response = call_api(sim, "GET", f"/{version}/models/gemini-0-none")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == (
        f"models/gemini-0-none is not found for API version {version}."
    )


def test_embed_content_answers_the_texts_embedding(sim: str) -> None:
    """embedContent: Gemini's `{"embedding": {"values": [...]}}`, the text's values, sized as
    outputDimensionality asks."""
    body = {**EMBED_BODY, "outputDimensionality": 8}
    response = call_api(sim, "POST", EMBED_PATH, json=body)
    assert response.status_code == 200
    assert response.json() == {"embedding": {"values": embedding_values("say something nice", 8)}}


def test_batch_embed_contents_answers_each_request_in_order(sim: str) -> None:
    """batchEmbedContents: one `{"values": [...]}` per request, as google-genai's embed_content
    sends them."""
    requests_ = [
        {"model": f"models/{EMBEDDING_MODEL}", "content": {"parts": [{"text": text}]}}
        for text in ("first", "second")
    ]
    response = call_api(sim, "POST", BATCH_EMBED_PATH, json={"requests": requests_})
    assert response.status_code == 200
    assert response.json() == {
        "embeddings": [{"values": embedding_values(text)} for text in ("first", "second")]
    }


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (EMBED_PATH, {}),
        (EMBED_PATH, {**EMBED_BODY, "outputDimensionality": 0}),
        (EMBED_PATH, {**EMBED_BODY, "outputDimensionality": 3073}),
        (BATCH_EMBED_PATH, {"requests": []}),
        (BATCH_EMBED_PATH, {"requests": ["text"]}),
        (BATCH_EMBED_PATH, EMBED_BODY),
    ],
)
def test_bad_embedding_requests_get_gemini_400(sim: str, path: str, body: Any) -> None:
    """No content, a size Gemini refuses, or no list of requests: INVALID_ARGUMENT."""
    response = call_api(sim, "POST", path, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


# --- Gemini's OpenAI-compatible API ---


def chat(base_url: str, key: str = "test-key", **fields: Any) -> requests.Response:
    """POST chat/completions with CHAT_BODY and `fields`, the key as a Bearer token."""
    return call_api(base_url, "POST", CHAT_PATH, key, json={**CHAT_BODY, **fields})


def test_streamed_chat_is_chunks_of_the_answer_then_done(sim: str) -> None:
    """stream: one chat.completion.chunk per event, LF LF framed, the same text as the native
    stream, then `data: [DONE]`."""
    response = chat(sim, stream=True)
    chunks = parse_openai_sse(response.content)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert len(chunks) == 3
    assert "".join(chunk["choices"][0]["delta"]["content"] for chunk in chunks) == answer_text(
        Behaviour(events=3)
    )
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {
        "completion_tokens": 3 * DEFAULT_WORDS_PER_EVENT,
        "prompt_tokens": 2,
        "total_tokens": 2 + 3 * DEFAULT_WORDS_PER_EVENT,
    }


def test_chat_not_streamed_is_one_chat_completion(sim: str) -> None:
    """Without stream: one chat.completion with the whole text, finish_reason and usage."""
    response = chat(sim)
    completion = response.json()
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert completion["object"] == "chat.completion"
    assert completion["model"] == "gemini-test"
    assert completion["choices"] == [
        {
            "finish_reason": "stop",
            "index": 0,
            "message": {"content": answer_text(Behaviour(events=3)), "role": "assistant"},
        }
    ]
    assert completion["usage"]["prompt_tokens"] == 2


@pytest.mark.parametrize("streamed", [False, True])
def test_chat_with_tools_answers_the_scripted_function_call(sim: str, streamed: bool) -> None:
    """parts_extra's functionCall is a tool call when the request offers tools."""
    call = {"functionCall": {"name": "lookup", "args": {"q": "café"}}}
    configure(sim, {"default": {"parts_extra": [call]}})
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    response = chat(sim, stream=streamed, tools=tools)
    if streamed:
        (tool_call,) = parse_openai_sse(response.content)[-1]["choices"][0]["delta"]["tool_calls"]
        assert tool_call.pop("index") == 0
    else:
        choice = response.json()["choices"][0]
        (tool_call,) = choice["message"]["tool_calls"]
        assert choice["finish_reason"] == "tool_calls"
    assert tool_call == {
        "function": {"arguments": '{"q": "café"}', "name": "lookup"},
        "id": "function-call-0",
        "type": "function",
    }
    untooled = chat(sim).json()["choices"][0]["message"]
    assert "tool_calls" not in untooled


def test_a_chat_stream_cut_or_broken_ends_without_done(sim: str) -> None:
    """A cut stream breaks off; an error mid-stream is one last `data: {"error": ...}` event,
    and [DONE] comes only after a whole answer."""
    configure(sim, {"default": {"error_event_after": 1}})
    raw = chat(sim, stream=True).content
    *frames, tail = raw.split(b"\n\n")
    assert tail == b"" and len(frames) == 2
    assert json.loads(frames[-1].removeprefix(b"data: ")) == UNAVAILABLE_BODY
    configure(sim, {"default": {"cut_after": 1}})
    body = {**CHAT_BODY, "stream": True}
    with call_api(sim, "POST", CHAT_PATH, json=body, stream=True) as response:
        received = read_until_cut(response)
    assert received.startswith(b"data: {") and received.endswith(b"}\n\n")
    assert b"[DONE]" not in received


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (CHAT_PATH, {"messages": CHAT_BODY["messages"]}),
        (CHAT_PATH, {"model": "gemini-test", "messages": []}),
        (CHAT_PATH, [CHAT_BODY]),
        (OPENAI_EMBEDDINGS_PATH, {"input": "hi"}),
        (OPENAI_EMBEDDINGS_PATH, {"model": EMBEDDING_MODEL, "input": [1, 2]}),
        (OPENAI_EMBEDDINGS_PATH, {"model": EMBEDDING_MODEL, "input": "hi", "dimensions": -1}),
    ],
)
def test_bad_openai_bodies_get_a_wrapped_400(sim: str, path: str, body: Any) -> None:
    """No model, no messages, no texts to embed: Gemini's 400, in a one-element array."""
    response = call_api(sim, "POST", path, json=body)
    assert response.status_code == 400
    (error,) = response.json()
    assert error["error"]["status"] == "INVALID_ARGUMENT"


def test_openai_embeddings_are_the_native_values_in_openai_list(sim: str) -> None:
    """One embedding object per input, the same values as the native methods give the text."""
    body = {"model": f"models/{EMBEDDING_MODEL}", "input": ["a b", "c"], "dimensions": 4}
    answer = call_api(sim, "POST", OPENAI_EMBEDDINGS_PATH, json=body).json()
    assert answer == {
        "data": [
            {"embedding": embedding_values(text, 4), "index": index, "object": "embedding"}
            for index, text in enumerate(["a b", "c"])
        ],
        "model": EMBEDDING_MODEL,
        "object": "list",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }


def test_openai_models_lists_and_retrieves_gemini_models(sim: str) -> None:
    """GET models is OpenAI's list of Gemini's ids; GET models/{id} one of them, or a
    wrapped 404."""
    listed = call_api(sim, "GET", OPENAI_MODELS_PATH).json()
    assert listed["object"] == "list"
    assert [model["id"] for model in listed["data"]] == [f"models/{m}" for m in LISTED_MODELS]
    one = call_api(sim, "GET", f"{OPENAI_MODELS_PATH}/gemini-2.5-pro").json()
    assert one == {"id": "models/gemini-2.5-pro", "object": "model", "owned_by": "google"}
    missing = call_api(sim, "GET", f"{OPENAI_MODELS_PATH}/gemini-0-none")
    assert missing.status_code == 404
    assert missing.json()[0]["error"]["status"] == "NOT_FOUND"
