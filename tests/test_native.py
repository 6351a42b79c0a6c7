"""Gemini's own paths through the proxy: Google's SDK with the proxy as its base URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from google import genai
from google.genai import errors, types

from tests.client import PROMPT, assert_json_error, calls_per_key, cooldowns, metric, upstream_calls
from tests.servers import KEYS, PASSWORD, REQUEST_TIMEOUT, ProxyServer, configure, control

pytestmark = pytest.mark.integration

ANSWER = " ".join(f"word{number}" for number in range(60))
KNOWN = {"events": 3, "text": ANSWER}
MODEL = "gemini-2.5-flash"
RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "gemini-recordings"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent"


@pytest.fixture
def proxy(own_proxy: ProxyServer) -> ProxyServer:
    """This module's own proxy, so key penalties here stay here."""
    return own_proxy


def sdk(proxy: ProxyServer, api_key: str = PASSWORD) -> genai.Client:
    """Google's client, aimed at the proxy, with the proxy's password as its API key."""
    options = types.HttpOptions(base_url=proxy.url, api_version="v1beta")
    return genai.Client(api_key=api_key, http_options=options)


def assert_gemini_saw_only_pool_keys(sim: str) -> None:
    for call in upstream_calls(sim):
        assert call["key"] in KEYS
        assert PASSWORD not in json.dumps(call) and "key=" not in call["query"]


def test_generate_content_through_the_sdk(proxy: ProxyServer, sim: str) -> None:
    """client.models.generate_content: the whole answer, from a pool key."""
    configure(sim, {"default": KNOWN})
    client = sdk(proxy)  # kept: a dropped Client closes its connection pool at once
    response = client.models.generate_content(model=MODEL, contents="Tell me a story")
    assert response.text == ANSWER
    assert_gemini_saw_only_pool_keys(sim)


def test_generate_content_stream_through_the_sdk(proxy: ProxyServer, sim: str) -> None:
    """client.models.generate_content_stream: the pieces add up to the answer."""
    configure(sim, {"default": KNOWN})
    client = sdk(proxy)
    stream = client.models.generate_content_stream(model=MODEL, contents="Tell me a story")
    assert "".join(chunk.text or "" for chunk in stream) == ANSWER
    (call,) = upstream_calls(sim)
    assert call["query"] == "alt=sse"
    assert_gemini_saw_only_pool_keys(sim)


def test_count_tokens_and_models_through_the_sdk(proxy: ProxyServer, sim: str) -> None:
    """count_tokens, models.list and models.get answer as Gemini's do."""
    client = sdk(proxy)
    assert client.models.count_tokens(model=MODEL, contents="one two three").total_tokens == 3
    names = [model.name for model in client.models.list()]
    assert f"models/{MODEL}" in names
    assert client.models.get(model=MODEL).name == f"models/{MODEL}"
    assert_gemini_saw_only_pool_keys(sim)


def test_a_wrong_key_is_a_gemini_shaped_401_and_nothing_goes_upstream(
    proxy: ProxyServer, sim: str
) -> None:
    """The SDK with a key that is not the proxy's password: 401, Gemini's error shape."""
    client = sdk(proxy, api_key="not-the-password")
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents="x")
    assert (caught.value.code, caught.value.status) == (401, "UNAUTHENTICATED")
    assert upstream_calls(sim) == []


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"x-goog-api-key": PASSWORD}, {}),
        ({}, {"key": PASSWORD}),
        ({"Authorization": f"Bearer {PASSWORD}"}, {}),
    ],
    ids=["header", "query", "bearer"],
)
def test_the_password_works_wherever_gemini_clients_put_their_key(
    proxy: ProxyServer, sim: str, headers: dict, params: dict
) -> None:
    """x-goog-api-key, ?key= and Bearer; never forwarded, ?key= included."""
    configure(sim, {"default": KNOWN})
    response = requests.post(
        f"{proxy.url}{STREAM}",
        params={"alt": "sse", **params},
        headers=headers,
        json=PROMPT,
        timeout=REQUEST_TIMEOUT,
    )
    assert response.status_code == 200 and response.headers["Content-Type"].startswith(
        "text/event-stream"
    )
    assert_gemini_saw_only_pool_keys(sim)


def test_the_native_stream_arrives_while_gemini_is_still_generating(
    proxy: ProxyServer, sim: str
) -> None:
    """No buffering: the first event reaches the client before the simulator's stream ends."""
    configure(sim, {"default": {**KNOWN, "delay": 0.3}})
    with requests.post(
        f"{proxy.url}{STREAM}",
        params={"alt": "sse"},
        headers={"x-goog-api-key": PASSWORD},
        json=PROMPT,
        stream=True,
        timeout=REQUEST_TIMEOUT,
    ) as response:
        first = next(response.iter_content(chunk_size=None))
        assert first.startswith(b"data: ")
        assert control(sim, "streams")["open"] == 1, "the proxy held the stream back"


def test_the_json_array_stream_passes_through_unchanged(proxy: ProxyServer, sim: str) -> None:
    """Without alt=sse: Gemini's JSON array, its content type and framing as Gemini sent them."""
    configure(sim, {"default": KNOWN})
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    headers = {"x-goog-api-key": PASSWORD}
    response = requests.post(f"{proxy.url}{STREAM}", json=body, headers=headers, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.content.startswith(b"[") and b"\n,\r\n" in response.content
    events = json.loads(response.content)
    text = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)
    assert text == ANSWER


RECORDED = sorted(RECORDINGS.glob("*.sse")) if RECORDINGS.is_dir() else []


@pytest.mark.parametrize("path", RECORDED or [None], ids=lambda path: path.name if path else "none")
def test_a_recorded_stream_comes_out_of_the_native_route_byte_for_byte(
    proxy: ProxyServer, sim: str, path: Path | None
) -> None:
    """Every real Gemini SSE body, served by the simulator, reaches the client unchanged."""
    if path is None:
        pytest.skip(f"no recordings at {RECORDINGS} (../shared/gemini-recordings)")
    recorded = path.read_bytes()
    configure(sim, {"default": {"raw_body": recorded.decode()}})
    response = requests.post(
        f"{proxy.url}{STREAM}",
        params={"alt": "sse"},
        headers={"x-goog-api-key": PASSWORD},
        json=PROMPT,
        timeout=REQUEST_TIMEOUT,
    )
    assert response.status_code == 200 and response.content == recorded


def test_failover_on_the_native_route_passes_a_429_key(start_proxy, sim: str) -> None:
    """k1 out of quota: the SDK's calls all succeed through k2; k1 is called once."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=f"{KEYS[0]},{KEYS[1]}")
    configure(sim, {"default": KNOWN, "keys": {KEYS[0]: {"fault": "quota", "retry_delay": 30}}})
    client = sdk(proxy)
    for _ in range(4):
        assert client.models.generate_content(model=MODEL, contents="hi").text == ANSWER
    assert calls_per_key(sim) == {"k1": 1, "k2": 4}
    assert cooldowns(proxy) == {("k1", "quota"): 1}


def test_native_requests_are_counted_by_route(proxy: ProxyServer, sim: str) -> None:
    """requests_total carries route="native" for Gemini's paths."""
    configure(sim, {"default": KNOWN})
    before = metric(proxy, "gemini_proxy_requests_total", route="native", status="200")
    client = sdk(proxy)
    client.models.generate_content(model=MODEL, contents="hi")
    after = metric(proxy, "gemini_proxy_requests_total", route="native", status="200")
    assert after == before + 1


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("POST", f"/v1beta/models/{MODEL}:predict", PROMPT, 404),
        ("POST", f"/v1/models/{MODEL}:predict", PROMPT, 404),
        ("POST", "/v1beta/models/bad..name:generateContent", PROMPT, 400),
        ("POST", "/v1/models/bad..name:generateContent", PROMPT, 400),
        ("POST", f"/v1/models/{MODEL}:generateContent", {"contents": []}, 400),
        ("POST", f"/v1beta/models/{MODEL}:embedContent", PROMPT, 400),
        ("POST", f"/v1/models/{MODEL}:embedContent", {"content": {"parts": []}}, 400),
        ("POST", f"/v1beta/models/{MODEL}:batchEmbedContents", {"requests": []}, 400),
        ("POST", f"/v1/models/{MODEL}:batchEmbedContents", {"requests": [PROMPT]}, 400),
        ("POST", f"/v1beta/models/{MODEL}:embedContent", [1], 400),
        ("POST", f"/v2/models/{MODEL}:generateContent", PROMPT, 404),
    ],
    ids=[
        "unknown-method",
        "unknown-method-v1",
        "bad-model",
        "bad-model-v1",
        "empty-contents-v1",
        "embed-without-content",
        "embed-without-parts",
        "batch-embed-without-requests",
        "batch-embed-request-without-content",
        "embed-body-not-an-object",
        "unknown-version",
    ],
)
def test_requests_the_proxy_does_not_pass_on_are_refused_locally(
    proxy: ProxyServer, sim: str, method: str, path: str, body: object, code: int
) -> None:
    """Only the listed methods, valid model names and bodies that pass their checks reach
    Gemini, under either version."""
    response = requests.request(
        method,
        f"{proxy.url}{path}",
        headers={"x-goog-api-key": PASSWORD},
        json=body,
        timeout=REQUEST_TIMEOUT,
    )
    assert_json_error(response, code)
    assert upstream_calls(sim) == []


def test_a_key_silent_after_its_headers_is_passed_over_before_any_byte(
    start_proxy, sim: str
) -> None:
    """Gemini's 200 headers, then nothing for UPSTREAM_TIMEOUT: nothing went to the client yet,
    so the next key answers."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=f"{KEYS[0]},{KEYS[1]}", UPSTREAM_TIMEOUT="1")
    stall = {"stall_after": 0, "stall_seconds": 2}
    configure(sim, {"default": KNOWN, "keys": {KEYS[0]: stall}})
    client = sdk(proxy)
    for _ in range(2):
        assert client.models.generate_content(model=MODEL, contents="hi").text == ANSWER
    assert calls_per_key(sim)["k1"] == 1


def test_a_native_stream_that_breaks_mid_way_cuts_the_clients_connection(
    proxy: ProxyServer, sim: str
) -> None:
    """After the first byte nothing can be retried: the client sees the stream break, as it
    would from Gemini, and the proxy logs no traceback for it."""
    configure(sim, {"default": {**KNOWN, "cut_after": 2}})
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.post(
            f"{proxy.url}{STREAM}",
            params={"alt": "sse"},
            headers={"x-goog-api-key": PASSWORD},
            json=PROMPT,
            timeout=REQUEST_TIMEOUT,
        )
    assert "Traceback" not in proxy.output()
