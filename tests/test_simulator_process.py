"""Tests for the Gemini simulator: the pure event builder, then the real process over sockets."""

import hashlib
import itertools
import json
import signal
import socket
import time
from typing import Any

import pytest
import requests
from google import genai
from google.genai import errors, types
from urllib3.exceptions import ReadTimeoutError

from simulator import (
    ANSWER_WORDS,
    DEFAULT_EVENTS,
    DEFAULT_WORDS_PER_EVENT,
    FAULTS,
    Behaviour,
    ConfigError,
    api_method,
    count_prompt_tokens,
    fault_error,
    format_duration,
    frame_array_element,
    frame_array_error,
    frame_bare_error,
    frame_event,
    list_models,
    merge_events,
    model_info,
    parse_config,
    sse_events,
)
from tests.servers import (
    REQUEST_TIMEOUT,
    SHUTDOWN_TIMEOUT,
    configure,
    control,
    start_simulator,
    wait_for,
)

STREAM_PATH = "/v1beta/models/gemini-test:streamGenerateContent"
GENERATE_PATH = "/v1beta/models/gemini-test:generateContent"
COUNT_PATH = "/v1beta/models/gemini-test:countTokens"
MODELS_PATH = "/v1beta/models"
LISTED_MODELS = ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-sim"]
PROMPT = {"contents": [{"role": "user", "parts": [{"text": "say something nice"}]}]}
PROXY_CHUNK_TOKENS = 50
RPC = "type.googleapis.com/google.rpc."
UNAVAILABLE_BODY = {
    "error": {
        "code": 503,
        "message": "The model is overloaded. Please try again later.",
        "status": "UNAVAILABLE",
    }
}
CUSTOM_ERROR = {
    "error": {"code": 429, "message": "slow down, café 🚀", "status": "RESOURCE_EXHAUSTED"}
}
# error_body for a mid-stream error, and the error the stream then ends with.
STREAM_ERRORS = [(None, UNAVAILABLE_BODY), (CUSTOM_ERROR, CUSTOM_ERROR)]
# Long enough to tell apart from a no-delay stream, short enough to keep the suite quick.
STALL_SECONDS = 0.5


def answer_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the events that carry a candidate."""
    return [event for event in events if "candidates" in event]


def texts(events: list[dict[str, Any]]) -> list[str]:
    """Return the text of each event's first part."""
    return [event["candidates"][0]["content"]["parts"][0]["text"] for event in events]


def detail(error: dict[str, Any], kind: str) -> dict[str, Any]:
    """Return the one detail of a google.rpc type (e.g. "QuotaFailure") in a Gemini error."""
    (found,) = [each for each in error["error"]["details"] if each["@type"] == RPC + kind]
    return found


def streams_since(base_url: str, before: dict[str, int]) -> dict[str, int]:
    """The growth of each /_sim/streams counter since `before` (they count for the whole run)."""
    return {name: count - before[name] for name, count in control(base_url, "streams").items()}


def parse_sse(raw: bytes) -> list[dict[str, Any]]:
    """Split a raw SSE body on CRLF CRLF, insisting that every event is `data: {json}`."""
    *frames, tail = raw.split(b"\r\n\r\n")
    assert tail == b""
    assert all(frame.startswith(b"data: {") and b"\n" not in frame for frame in frames)
    return [json.loads(frame.removeprefix(b"data: ")) for frame in frames]


def parse_array(raw: bytes) -> list[dict[str, Any]]:
    """Split a complete JSON-array stream into its events, insisting on Gemini's exact framing."""
    assert raw.startswith(b"[{") and raw.endswith(b"}\n]")
    frames = raw[1:-2].split(b"\n,\r\n")
    assert all(frame.startswith(b"{") and b"\n" not in frame for frame in frames)
    events = [json.loads(frame) for frame in frames]
    assert json.loads(raw) == events
    return events


def answer_text(behaviour: Behaviour) -> str:
    """The answer text (thoughts left out) that the simulator streams for a behaviour."""
    return "".join(
        part["text"]
        for event in answer_events(list(sse_events(behaviour)))
        for part in event["candidates"][0]["content"]["parts"]
        if "text" in part and not part.get("thought")
    )


def generate(base_url: str, key: str | None = "test-key", **kwargs: Any) -> requests.Response:
    """Open a streaming generation like the proxy does."""
    headers = {} if key is None else {"x-goog-api-key": key}
    kwargs.setdefault("json", PROMPT)
    return requests.post(
        f"{base_url}{STREAM_PATH}",
        params={"alt": "sse"},
        headers=headers,
        stream=True,
        **{"timeout": REQUEST_TIMEOUT, **kwargs},
    )


def call_api(
    base_url: str, method: str, path: str, key: str | None = "test-key", **kwargs: Any
) -> requests.Response:
    """Call one of the simulator's Gemini API methods, sending PROMPT as the body of a POST."""
    headers = {} if key is None else {"x-goog-api-key": key}
    if method == "POST":
        kwargs.setdefault("json", PROMPT)
    return requests.request(
        method, f"{base_url}{path}", headers=headers, **{"timeout": REQUEST_TIMEOUT, **kwargs}
    )


def stream_array(base_url: str, key: str = "test-key", **kwargs: Any) -> requests.Response:
    """Open a streaming generation without alt=sse: Gemini's JSON array."""
    return call_api(base_url, "POST", STREAM_PATH, key, stream=True, **kwargs)


# --- The event builder, without sockets ---


def test_usage_metadata_is_cumulative_on_every_event() -> None:
    """Every event carries usage, with candidate tokens summed over the events so far."""
    events = list(sse_events(Behaviour(events=4, words_per_event=5), prompt_tokens=7))
    assert [event["usageMetadata"] for event in events] == [
        {"promptTokenCount": 7, "candidatesTokenCount": 5 * n, "totalTokenCount": 7 + 5 * n}
        for n in range(1, 5)
    ]


@pytest.mark.parametrize("finish_reason", ["STOP", "MAX_TOKENS", None])
def test_finish_reason_is_on_the_last_event_only(finish_reason: str | None) -> None:
    """Only the last candidate has a finishReason, and none when it is configured as None."""
    events = list(sse_events(Behaviour(events=3, finish_reason=finish_reason)))
    reasons = [event["candidates"][0].get("finishReason") for event in events]
    assert reasons == [None, None, finish_reason]


def test_default_answer_crosses_several_proxy_chunks_with_multibyte_words() -> None:
    """The default answer spans several 50-token chunks and contains non-ASCII words."""
    events = list(sse_events())
    total = events[-1]["usageMetadata"]["candidatesTokenCount"]
    assert len(events) == DEFAULT_EVENTS
    assert total == DEFAULT_EVENTS * DEFAULT_WORDS_PER_EVENT
    assert total // PROXY_CHUNK_TOKENS >= 4
    answer = "".join(texts(events))
    assert answer.split()[: len(ANSWER_WORDS)] == list(ANSWER_WORDS)
    assert len(answer.encode()) > len(answer)
    assert all(text.startswith(" ") for text in texts(events)[1:])


def test_thought_events_come_first_and_count_as_thoughts_only() -> None:
    """Thought parts are flagged and raise thoughtsTokenCount and the total, not candidates."""
    behaviour = Behaviour(events=2, thought_events=2, words_per_event=3)
    events = list(sse_events(behaviour, prompt_tokens=1))
    flags = [event["candidates"][0]["content"]["parts"][0].get("thought") for event in events]
    usage = [event["usageMetadata"] for event in events]
    assert flags == [True, True, None, None]
    assert [u["thoughtsTokenCount"] for u in usage] == [3, 6, 6, 6]
    assert [u["candidatesTokenCount"] for u in usage] == [0, 0, 3, 6]
    assert [u["totalTokenCount"] for u in usage] == [4, 7, 10, 13]


def test_block_reason_sends_one_feedback_event_without_candidates() -> None:
    """A blocked prompt gets a single promptFeedback event with prompt-only usage."""
    events = list(sse_events(Behaviour(block_reason="SAFETY"), prompt_tokens=4, model="m"))
    assert events == [
        {
            "promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4},
            "modelVersion": "m",
            "responseId": "sim-response",
        }
    ]


@pytest.mark.parametrize(
    ("text", "events"),
    [
        ("Hello world, this is a fixed answer.", 3),
        ("  leading and trailing spaces  ", 2),
        ("naïve café 🚀 multi-byte", 4),
        ("two words", 5),
        ("one", 1),
    ],
)
def test_configured_text_is_split_into_events_that_join_back_exactly(
    text: str, events: int
) -> None:
    """A configured text comes out in `events` pieces whose concatenation is the text."""
    built = list(sse_events(Behaviour(text=text, events=events)))
    assert len(built) == events
    assert "".join(texts(built)) == text
    assert built[-1]["usageMetadata"]["candidatesTokenCount"] == len(text.split())


@pytest.mark.parametrize(("after", "answers"), [(0, 0), (2, 2), (9, 3)])
def test_error_event_replaces_the_rest_of_the_stream(after: int, answers: int) -> None:
    """After N events (or all of them) comes one UNAVAILABLE error event, then nothing."""
    events = list(sse_events(Behaviour(events=3, error_event_after=after)))
    assert len(answer_events(events)) == answers
    assert events[-1] == UNAVAILABLE_BODY


def test_error_event_is_the_configured_error_body_when_there_is_one() -> None:
    """error_body replaces the default 503 as the error that ends the stream."""
    events = list(sse_events(Behaviour(events=3, error_event_after=1, error_body=CUSTOM_ERROR)))
    assert len(answer_events(events)) == 1
    assert events[1:] == [CUSTOM_ERROR]


def test_bare_error_is_indented_json_and_a_newline_not_an_event() -> None:
    """A bare error is Google's pretty-printed JSON, unframed, ending with one newline."""
    frame = frame_bare_error(CUSTOM_ERROR)
    assert frame == json.dumps(CUSTOM_ERROR, indent=2, ensure_ascii=False).encode() + b"\n"
    assert frame.startswith(b'{\n  "error": {\n    "code": 429,')
    assert b"data:" not in frame


@pytest.mark.parametrize(
    ("fault", "code", "status", "types"),
    [
        ("quota", 429, "RESOURCE_EXHAUSTED", ["QuotaFailure", "Help", "RetryInfo"]),
        ("daily_quota", 429, "RESOURCE_EXHAUSTED", ["QuotaFailure", "Help", "RetryInfo"]),
        ("invalid_key", 400, "INVALID_ARGUMENT", ["ErrorInfo", "LocalizedMessage"]),
        ("forbidden", 403, "PERMISSION_DENIED", ["ErrorInfo"]),
        ("unavailable", 503, "UNAVAILABLE", []),
        ("internal", 500, "INTERNAL", []),
    ],
)
def test_each_fault_has_gemini_status_and_detail_types(
    fault: str, code: int, status: str, types: list[str]
) -> None:
    """Every named fault has Gemini's HTTP code, gRPC status and google.rpc detail types."""
    error = fault_error(fault, key="AIza-test", model="gemini-test", retry_delay=1)
    assert FAULTS[fault] == code
    assert error["error"]["code"] == code
    assert error["error"]["status"] == status
    assert [each["@type"] for each in error["error"].get("details", [])] == [
        RPC + kind for kind in types
    ]


def test_the_fault_table_is_the_one_tested() -> None:
    """A new fault name must come with a row in the tests above."""
    assert set(FAULTS) == {
        "quota",
        "daily_quota",
        "invalid_key",
        "forbidden",
        "unavailable",
        "internal",
    }


@pytest.mark.parametrize(
    ("fault", "quota_id", "quota_value"),
    [
        ("quota", "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "10"),
        ("daily_quota", "GenerateRequestsPerDayPerProjectPerModel-FreeTier", "250"),
    ],
)
def test_quota_faults_name_the_free_tier_limit_and_the_model(
    fault: str, quota_id: str, quota_value: str
) -> None:
    """The QuotaFailure names Gemini's request metric, the limit and the model of the call."""
    error = fault_error(fault, key="k", model="gemini-2.5-flash", retry_delay=34)
    assert error["error"]["message"].startswith(
        "You exceeded your current quota, please check your plan and billing details."
    )
    assert detail(error, "QuotaFailure")["violations"] == [
        {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": quota_id,
            "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
            "quotaValue": quota_value,
        }
    ]
    assert detail(error, "Help")["links"][0]["url"].startswith("https://ai.google.dev/")
    assert detail(error, "RetryInfo") == {"@type": RPC + "RetryInfo", "retryDelay": "34s"}


@pytest.mark.parametrize("fault", ["quota", "daily_quota"])
def test_quota_faults_leave_out_retry_info_without_a_retry_delay(fault: str) -> None:
    """Gemini does not always say when to retry; retry_delay None means no RetryInfo."""
    error = fault_error(fault, key="k", model="m")
    assert [each["@type"] for each in error["error"]["details"]] == [
        RPC + "QuotaFailure",
        RPC + "Help",
    ]


@pytest.mark.parametrize(
    ("seconds", "written"),
    [(34, "34s"), (0.5, "0.5s"), (34.4, "34.4s"), (0, "0s"), (10, "10s"), (1.25, "1.25s")],
)
def test_retry_delay_is_written_like_a_protobuf_duration(seconds: float, written: str) -> None:
    """retryDelay is compact: whole seconds bare, fractions without trailing zeros."""
    assert format_duration(seconds) == written


def test_invalid_key_fault_is_exactly_gemini_body() -> None:
    """API_KEY_INVALID comes with its ErrorInfo and LocalizedMessage, as Gemini sends them."""
    message = "API key not valid. Please pass a valid API key."
    assert fault_error("invalid_key", key="k", model="m") == {
        "error": {
            "code": 400,
            "message": message,
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": RPC + "ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                },
                {"@type": RPC + "LocalizedMessage", "locale": "en-US", "message": message},
            ],
        }
    }


def test_forbidden_fault_quotes_the_key_used() -> None:
    """Like Gemini, the suspension message names the caller's key; a proxy has to redact it."""
    error = fault_error("forbidden", key="AIza-the-key", model="m")
    assert error["error"]["message"] == (
        "Permission denied: Consumer 'api_key:AIza-the-key' has been suspended."
    )
    assert detail(error, "ErrorInfo") == {
        "@type": RPC + "ErrorInfo",
        "reason": "CONSUMER_SUSPENDED",
        "domain": "googleapis.com",
        "metadata": {
            "consumer": "projects/123456789",
            "service": "generativelanguage.googleapis.com",
        },
    }


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"default": {"fault": "boom"}}, "default.fault must be one of quota, daily_quota"),
        ({"keys": {"k": {"fault": "QUOTA"}}}, "keys.k.fault"),
        ({"default": {"fault": "quota", "status": 429}}, "default sets both fault and status"),
        ({"default": {"status": 500}, "keys": {"k": {"fault": "quota"}}}, "keys.k sets both"),
        ({"default": {"stall_seconds": -1}}, "default.stall_seconds must not be negative"),
        ({"default": {"retry_delay": "34s"}}, "default.retry_delay"),
        ({"default": {"error_bare": 1}}, "default.error_bare"),
    ],
)
def test_config_rejects_bad_faults_and_contradictions(config: dict[str, Any], named: str) -> None:
    """Unknown fault names (listing the valid ones) and fault with status are refused."""
    with pytest.raises(ConfigError, match=named):
        parse_config(config, Behaviour())


def test_a_key_may_trade_the_default_fault_for_a_status() -> None:
    """The check is on the resolved behaviour: a key can null the default fault and set status."""
    config = parse_config(
        {"default": {"fault": "quota"}, "keys": {"k": {"fault": None, "status": 500}}}, Behaviour()
    )
    assert (config.default.fault, config.default.status) == ("quota", None)
    assert (config.keys["k"].fault, config.keys["k"].status) == (None, 500)


def test_parts_extra_are_added_to_the_last_event_only() -> None:
    """Extra parts such as a functionCall sit beside the text of the last event."""
    call = {"functionCall": {"name": "lookup", "args": {"q": "x"}}}
    events = list(sse_events(Behaviour(events=2, parts_extra=[call])))
    parts = [event["candidates"][0]["content"]["parts"] for event in events]
    assert [len(p) for p in parts] == [1, 2]
    assert parts[1][1] == call


@pytest.mark.parametrize(
    ("body", "tokens"),
    [
        (PROMPT, 3),
        ({"contents": [{"parts": [{"text": "a b"}, {"inlineData": {}}]}, {"parts": []}]}, 2),
        ({"contents": [{"parts": [{"text": "one"}]}, {"parts": [{"text": " two  three "}]}]}, 3),
        ({"contents": []}, 1),
        ({}, 1),
        (None, 1),
    ],
)
def test_prompt_tokens_are_the_words_in_text_parts(body: Any, tokens: int) -> None:
    """promptTokenCount counts words in every text part, and is at least 1."""
    assert count_prompt_tokens(body) == tokens


def test_frame_is_compact_utf8_json_after_data_and_ends_with_crlf_crlf() -> None:
    """An event is framed as Gemini does: `data: ` + compact raw UTF-8 JSON + CRLF CRLF."""
    frame = frame_event({"a": [1, {"b": "café"}]})
    assert frame == 'data: {"a":[1,{"b":"café"}]}\r\n\r\n'.encode()


@pytest.mark.parametrize(
    ("event", "index", "framed"),
    [
        ({"a": 1}, 0, b'[{"a":1}'),
        ({"a": 1}, 1, b'\n,\r\n{"a":1}'),
        ({"b": ["café", 2]}, 7, '\n,\r\n{"b":["café",2]}'.encode()),
    ],
)
def test_array_element_is_opened_or_separated_like_gemini(
    event: dict[str, Any], index: int, framed: bytes
) -> None:
    """The first element follows `[`; each next one follows `\\n,\\r\\n`; all compact UTF-8."""
    assert frame_array_element(event, index) == framed


def test_array_framed_events_and_the_closing_bracket_are_one_json_array() -> None:
    """The elements of a whole stream plus `\\n]` parse back as the list of its events."""
    events = list(sse_events(Behaviour(events=3, words_per_event=2)))
    raw = b"".join(frame_array_element(event, n) for n, event in enumerate(events)) + b"\n]"
    assert parse_array(raw) == events


@pytest.mark.parametrize(
    ("pretty", "framed"),
    [
        (False, b'[{"error":{"code":503}}\n]'),
        (True, b'[{\n  "error": {\n    "code": 503\n  }\n}\n]'),
    ],
)
def test_array_stream_errors_are_one_element_arrays(pretty: bool, framed: bytes) -> None:
    """Before a JSON-array stream, Gemini's HTTP error comes wrapped in a one-element array."""
    assert frame_array_error({"error": {"code": 503}}, pretty=pretty) == framed


@pytest.mark.parametrize(
    ("behaviour", "answer"),
    [
        (
            Behaviour(text="Hello there, café 🚀", events=3),
            {
                "candidates": [
                    {
                        "content": {"parts": [{"text": "Hello there, café 🚀"}], "role": "model"},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": 5,
                    "candidatesTokenCount": 4,
                    "totalTokenCount": 9,
                },
                "modelVersion": "gemini-test",
                "responseId": "sim-response",
            },
        ),
        (
            Behaviour(
                text="a b c",
                events=2,
                thought_events=2,
                words_per_event=1,
                finish_reason="MAX_TOKENS",
                parts_extra=[{"functionCall": {"name": "f", "args": {}}}],
            ),
            {
                "candidates": [
                    {
                        "content": {
                            "parts": [
                                {"text": "first consider", "thought": True},
                                {"text": "a b c"},
                                {"functionCall": {"name": "f", "args": {}}},
                            ],
                            "role": "model",
                        },
                        "finishReason": "MAX_TOKENS",
                        "index": 0,
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": 5,
                    "candidatesTokenCount": 3,
                    "totalTokenCount": 10,
                    "thoughtsTokenCount": 2,
                },
                "modelVersion": "gemini-test",
                "responseId": "sim-response",
            },
        ),
        (
            Behaviour(text="x", events=1, finish_reason=None),
            {
                "candidates": [
                    {"content": {"parts": [{"text": "x"}], "role": "model"}, "index": 0}
                ],
                "usageMetadata": {
                    "promptTokenCount": 5,
                    "candidatesTokenCount": 1,
                    "totalTokenCount": 6,
                },
                "modelVersion": "gemini-test",
                "responseId": "sim-response",
            },
        ),
        (
            Behaviour(block_reason="SAFETY"),
            {
                "promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
                "modelVersion": "gemini-test",
                "responseId": "sim-response",
            },
        ),
    ],
)
def test_generate_content_answer_is_the_stream_merged(
    behaviour: Behaviour, answer: dict[str, Any]
) -> None:
    """One candidate, text joined per kind, then parts_extra; a block is its feedback event."""
    events = sse_events(behaviour, model="gemini-test", prompt_tokens=5)
    assert merge_events(events) == answer


def test_merging_keeps_text_parts_with_more_than_text_apart() -> None:
    """A text part carrying more than text (a thoughtSignature) is not joined into its neighbour."""
    signed = {"text": "b", "thoughtSignature": "c2ln"}
    events = [
        {"candidates": [{"content": {"parts": [{"text": "a"}]}}]},
        {"candidates": [{"content": {"parts": [signed, {"text": "c"}]}}]},
    ]
    parts = merge_events(events)["candidates"][0]["content"]["parts"]
    assert parts == [{"text": "a"}, signed, {"text": "c"}]


@pytest.mark.parametrize(
    ("query", "names", "next_token"),
    [
        ({}, LISTED_MODELS, None),
        ({"pageSize": ["0"]}, LISTED_MODELS, None),
        ({"pageSize": ["3"]}, LISTED_MODELS, None),
        ({"pageSize": ["2"]}, LISTED_MODELS[:2], "2"),
        ({"pageSize": ["2"], "pageToken": ["2"]}, LISTED_MODELS[2:], None),
        ({"pageSize": ["1"], "pageToken": ["1"]}, LISTED_MODELS[1:2], "2"),
        ({"pageToken": ["1"]}, LISTED_MODELS[1:], None),
    ],
)
def test_model_list_pages(
    query: dict[str, list[str]], names: list[str], next_token: str | None
) -> None:
    """pageSize (0 or none: 50) cuts the list; nextPageToken leads to the rest, only if any."""
    page = list_models(query)
    assert [model["name"] for model in page["models"]] == [f"models/{name}" for name in names]
    assert page.get("nextPageToken") == next_token


@pytest.mark.parametrize(
    "query",
    [{"pageSize": ["-1"]}, {"pageSize": ["many"]}, {"pageToken": ["3"]}, {"pageToken": ["x"]}],
)
def test_model_list_refuses_bad_page_sizes_and_tokens(query: dict[str, list[str]]) -> None:
    """A page size that is no whole number, or a token it never gave out, is a ValueError."""
    with pytest.raises(ValueError, match="page"):
        list_models(query)


def test_model_description_has_gemini_fields() -> None:
    """A listed model is described with the fields Gemini gives; others are unknown."""
    info = model_info("gemini-2.5-flash")
    assert info is not None
    assert info.pop("description")
    assert info == {
        "name": "models/gemini-2.5-flash",
        "version": "001",
        "displayName": "Gemini 2.5 Flash",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens", "streamGenerateContent"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": True,
    }
    assert model_info("gemini-test") is None


@pytest.mark.parametrize(
    ("method", "path", "name", "model"),
    [
        ("POST", STREAM_PATH, "models.streamGenerateContent", "gemini-test"),
        ("POST", GENERATE_PATH, "models.generateContent", "gemini-test"),
        ("POST", COUNT_PATH, "models.countTokens", "gemini-test"),
        ("GET", "/v1beta/models", "models.list", None),
        ("GET", "/v1beta/models/gemini-2.5-pro", "models.get", "gemini-2.5-pro"),
        ("GET", "/v1beta/models/unknown-1.0", "models.get", "unknown-1.0"),
        ("GET", STREAM_PATH, None, "gemini-test"),
        ("POST", "/v1beta/models", None, None),
        ("DELETE", "/v1beta/models/gemini-2.5-pro", None, "gemini-2.5-pro"),
        ("POST", "/v1beta/models/gemini-test:embedContent", None, "gemini-test"),
        ("GET", "/v1beta/models/gemini-test:get", None, "gemini-test"),
        ("GET", "/v1beta/models/", None, None),
        ("GET", "/v1beta/models/a/b", None, None),
        ("GET", "/v1/models", None, None),
    ],
)
def test_api_method_names_the_method_and_model_of_a_request(
    method: str, path: str, name: str | None, model: str | None
) -> None:
    """Each served path and verb has its method name; anything else none, the model still read."""
    assert api_method(method, path) == (name, model)


# --- The simulator process, over sockets ---


@pytest.mark.integration
def test_stream_is_crlf_framed_sse_with_prompt_and_usage(sim: str) -> None:
    """A 200 text/event-stream body parses into the configured events, split by CRLF CRLF."""
    with generate(sim) as response:
        raw = response.raw.read()
    events = parse_sse(raw)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert len(events) == 3
    assert {event["modelVersion"] for event in events} == {"gemini-test"}
    assert len({event["responseId"] for event in events}) == 1
    assert events[0]["usageMetadata"]["promptTokenCount"] == 3
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.integration
def test_stamped_events_carry_their_send_time_in_the_text_too(sim: str) -> None:
    """With stamp, each answer text ends with "@<simSentAt>", which survives into chunks."""
    configure(sim, {"default": {"stamp": True}})
    with generate(sim) as response:
        events = answer_events(parse_sse(response.raw.read()))
    for event in events:
        text = event["candidates"][0]["content"]["parts"][-1]["text"]
        assert text.endswith(f" @{event['simSentAt']:.6f}")


@pytest.mark.integration
def test_headers_arrive_before_a_delayed_first_event(sim: str) -> None:
    """Headers are sent at once; first_delay holds back only the first event."""
    first_delay = 0.3
    configure(sim, {"default": {"first_delay": first_delay, "stamp": True}})
    started = time.time()
    with generate(sim) as response:
        headers_after = time.time() - started
        events = parse_sse(response.raw.read())
    assert headers_after < first_delay
    assert events[0]["simSentAt"] - started >= first_delay


@pytest.mark.integration
@pytest.mark.parametrize(
    ("path", "key", "data", "status", "grpc_status"),
    [
        (STREAM_PATH, None, json.dumps(PROMPT), 403, "PERMISSION_DENIED"),
        (STREAM_PATH, "", json.dumps(PROMPT), 403, "PERMISSION_DENIED"),
        ("/v1beta/models/a%2Fb:streamGenerateContent", "k", json.dumps(PROMPT), 404, "NOT_FOUND"),
        ("/v1beta/models/gemini-test:embedContent", "k", json.dumps(PROMPT), 404, "NOT_FOUND"),
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


@pytest.mark.integration
@pytest.mark.parametrize(
    ("key", "status", "retry_after"), [("limited-key", 429, "7"), ("other-key", 200, None)]
)
def test_per_key_override_applies_to_that_key_only(
    sim: str, key: str, status: int, retry_after: str | None
) -> None:
    """A key configured for 429 gets it with Retry-After; other keys still stream."""
    configure(sim, {"keys": {"limited-key": {"status": 429, "retry_after": 7}}})
    with generate(sim, key=key) as response:
        assert response.status_code == status
        assert response.headers.get("Retry-After") == retry_after
        if status == 429:
            assert response.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


@pytest.mark.integration
def test_cut_after_breaks_the_chunked_body_on_the_client(sim: str) -> None:
    """cut_after=N delivers N events, then the connection drops and the client's read fails."""
    configure(sim, {"default": {"events": 5, "cut_after": 2}})
    received = bytearray()
    with pytest.raises(requests.exceptions.ChunkedEncodingError), generate(sim) as response:
        for chunk in response.iter_content(chunk_size=None):
            received += chunk
    assert len(parse_sse(bytes(received))) == 2
    assert control(sim, "streams")["cut"] >= 1


@pytest.mark.integration
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


@pytest.mark.integration
def test_requests_log_records_key_model_query_and_body_until_cleared(sim: str) -> None:
    """Each call is logged in order with its key, model, query and parsed body."""
    for key in ("first-key", "second-key"):
        generate(sim, key=key).close()
    logged = control(sim, "requests")["requests"]
    assert [entry["key"] for entry in logged] == ["first-key", "second-key"]
    assert logged[0]["model"] == "gemini-test"
    assert logged[0]["path"] == STREAM_PATH
    assert logged[0]["query"] == "alt=sse"
    assert logged[0]["body"] == PROMPT
    requests.delete(f"{sim}/_sim/requests", timeout=REQUEST_TIMEOUT).raise_for_status()
    assert control(sim, "requests") == {"requests": []}


@pytest.mark.integration
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


@pytest.mark.integration
def test_streams_counter_sees_a_client_that_closes_early(sim: str) -> None:
    """A client leaving mid-stream is counted as closed_early and the stream is no longer open."""
    configure(sim, {"default": {"events": 200, "delay": 0.01}})
    before = control(sim, "streams")
    with generate(sim) as response:
        next(response.iter_content(chunk_size=None))
        assert control(sim, "streams")["open"] == before["open"] + 1
    wait_for(lambda: control(sim, "streams")["closed_early"] == before["closed_early"] + 1)
    after = control(sim, "streams")
    assert after["open"] == before["open"]
    assert after["opened"] == before["opened"] + 1


@pytest.mark.integration
def test_health_answers_ok(sim: str) -> None:
    """The health endpoint reports ok."""
    assert control(sim, "health") == {"status": "ok"}


@pytest.mark.integration
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


@pytest.mark.integration
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_is_answered_as_json_before_any_event(sim: str, fault: str) -> None:
    """A fault is Gemini's HTTP error: its status, a pretty JSON body, for that key only."""
    configure(sim, {"keys": {"faulty-key": {"fault": fault, "retry_delay": 0.5}}})
    before = control(sim, "streams")
    with generate(sim, key="faulty-key") as response:
        raw = response.raw.read()
    expected = fault_error(fault, key="faulty-key", model="gemini-test", retry_delay=0.5)
    assert response.status_code == FAULTS[fault]
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert json.loads(raw) == expected
    assert raw.startswith(b'{\n  "error": {\n')
    assert streams_since(sim, before)["opened"] == 0
    with generate(sim, key="other-key") as other:
        assert len(parse_sse(other.raw.read())) == 3


@pytest.mark.integration
def test_quota_fault_quotes_the_model_and_retry_delay_and_sends_retry_after(sim: str) -> None:
    """The model comes from the path, retryDelay from retry_delay, Retry-After from retry_after."""
    configure(sim, {"default": {"fault": "quota", "retry_delay": 34.4, "retry_after": 35}})
    with generate(sim) as response:
        error = response.json()
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "35"
    violation = detail(error, "QuotaFailure")["violations"][0]
    assert violation["quotaDimensions"]["model"] == "gemini-test"
    assert detail(error, "RetryInfo")["retryDelay"] == "34.4s"


@pytest.mark.integration
def test_forbidden_fault_quotes_the_key_of_the_request(sim: str) -> None:
    """The suspended-consumer message carries the very key the request used."""
    configure(sim, {"default": {"fault": "forbidden"}})
    with generate(sim, key="AIza-secret-key") as response:
        message = response.json()["error"]["message"]
    assert response.status_code == 403
    assert "'api_key:AIza-secret-key'" in message


@pytest.mark.integration
def test_status_with_error_body_is_still_a_pre_stream_http_error(sim: str) -> None:
    """error_body with status answers before any event, even with error_event_after set."""
    configure(sim, {"default": {"status": 429, "error_body": CUSTOM_ERROR, "error_event_after": 1}})
    with generate(sim) as response:
        assert response.status_code == 429
        assert response.json() == CUSTOM_ERROR


@pytest.mark.integration
@pytest.mark.parametrize("stall_after", [0, 1, 2, 3])
def test_stall_keeps_the_connection_silent_then_goes_on(sim: str, stall_after: int) -> None:
    """After stall_after events nothing comes for stall_seconds; then the rest arrives whole."""
    stall = {"stall_after": stall_after, "stall_seconds": STALL_SECONDS, "stamp": True}
    configure(sim, {"default": stall})
    before = control(sim, "streams")
    started = time.time()
    with generate(sim) as response:
        events = parse_sse(response.raw.read())
    finished = time.time()
    assert response.status_code == 200
    assert len(answer_events(events)) == 3
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    # The request, each event as sent, the end: the stall is the gap after stall_after events.
    moments = [started, *(event["simSentAt"] for event in events), finished]
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert gaps[stall_after] >= STALL_SECONDS
    assert streams_since(sim, before)["stalled"] == 1


@pytest.mark.integration
@pytest.mark.parametrize("stall_after", [0, 1])
def test_a_read_timeout_shorter_than_the_stall_fires(sim: str, stall_after: int) -> None:
    """The headers and stall_after events arrive; then a client's short read timeout expires."""
    configure(sim, {"default": {"stall_after": stall_after, "stall_seconds": 3 * STALL_SECONDS}})
    received = []
    with (
        generate(sim, timeout=(REQUEST_TIMEOUT, STALL_SECONDS)) as response,
        pytest.raises(requests.exceptions.ConnectionError) as raised,
    ):
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        received.extend(response.iter_content(chunk_size=None))
    assert isinstance(raised.value.args[0], ReadTimeoutError)
    assert len(parse_sse(b"".join(received))) == stall_after


@pytest.mark.integration
def test_a_stalled_stream_does_not_hold_up_other_streams(sim: str) -> None:
    """While one key's stream stalls, another key's stream is served from start to end."""
    configure(sim, {"keys": {"stalled-key": {"stall_after": 0, "stall_seconds": 2.0}}})
    before = control(sim, "streams")
    with generate(sim, key="stalled-key") as stalled:
        assert stalled.status_code == 200
        with generate(sim, key="other-key") as other:
            assert len(parse_sse(other.raw.read())) == 3
        # Had the stall blocked the server, the stalled stream would have ended first.
        wait_for(lambda: streams_since(sim, before)["opened"] == 2)
        grown = streams_since(sim, before)
        assert (grown["open"], grown["stalled"]) == (1, 1)


@pytest.mark.integration
@pytest.mark.parametrize(("error_body", "error"), STREAM_ERRORS)
def test_error_event_after_sends_the_error_body_as_an_event(
    sim: str, error_body: dict[str, Any] | None, error: dict[str, Any]
) -> None:
    """The mid-stream error event is error_body when set, else Gemini's 503."""
    configure(sim, {"default": {"error_event_after": 2, "error_body": error_body}})
    before = control(sim, "streams")
    with generate(sim) as response:
        events = parse_sse(response.raw.read())
    assert len(answer_events(events)) == 2
    assert events[-1] == error
    assert streams_since(sim, before)["errored"] == 1


@pytest.mark.integration
@pytest.mark.parametrize(("error_body", "error"), STREAM_ERRORS)
def test_bare_error_ends_the_body_after_the_events(
    sim: str, error_body: dict[str, Any] | None, error: dict[str, Any]
) -> None:
    """error_bare: the events, then the error as indented JSON and a newline, then a clean end."""
    configure(
        sim, {"default": {"error_event_after": 2, "error_bare": True, "error_body": error_body}}
    )
    before = control(sim, "streams")
    with generate(sim) as response:
        raw = response.raw.read()
    events, bare = raw[: raw.rindex(b"\r\n\r\n") + 4], raw[raw.rindex(b"\r\n\r\n") + 4 :]
    assert response.status_code == 200
    assert len(answer_events(parse_sse(events))) == 2
    assert bare == json.dumps(error, indent=2, ensure_ascii=False).encode() + b"\n"
    assert streams_since(sim, before)["errored"] == 1


# --- Gemini's other methods: the JSON-array stream, generateContent, countTokens, models ---


@pytest.mark.integration
@pytest.mark.parametrize("query", [{}, {"alt": "json"}])
def test_stream_without_alt_sse_is_gemini_json_array_of_the_same_events(
    sim: str, query: dict[str, str]
) -> None:
    """Without alt=sse (or with alt=json) the events come as Gemini's JSON array, framed exactly."""
    with stream_array(sim, params=query) as response:
        raw = response.raw.read()
    with generate(sim) as sse:
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


@pytest.mark.integration
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


@pytest.mark.integration
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
    assert len(answer_events(events)) == 2
    assert events[-1] == error
    assert streams_since(sim, before)["errored"] == 1


@pytest.mark.integration
def test_cut_array_stream_breaks_off_without_its_closing_bracket(sim: str) -> None:
    """cut_after=N: `[`, N elements, then the connection drops; `]` never comes."""
    configure(sim, {"default": {"events": 5, "cut_after": 2}})
    received = bytearray()
    with pytest.raises(requests.exceptions.ChunkedEncodingError), stream_array(sim) as response:
        for chunk in response.iter_content(chunk_size=None):
            received += chunk
    assert received.startswith(b"[{") and received.endswith(b"}")
    assert received.count(b"\n,\r\n") == 1
    assert json.loads(bytes(received) + b"\n]")


@pytest.mark.integration
def test_an_empty_array_stream_is_an_empty_array(sim: str) -> None:
    """No events at all (events 0): the body is `[]`, still valid JSON."""
    configure(sim, {"default": {"events": 0}})
    with stream_array(sim) as response:
        assert response.raw.read() == b"[]"


@pytest.mark.integration
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


@pytest.mark.integration
def test_stream_with_an_unknown_alt_is_refused(sim: str) -> None:
    """alt is sse or json (the default); anything else is Gemini's 400."""
    response = call_api(sim, "POST", STREAM_PATH, params={"alt": "csv"})
    assert response.status_code == 400
    assert "'alt'" in response.json()[0]["error"]["message"]


@pytest.mark.integration
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


@pytest.mark.integration
def test_generate_content_waits_first_delay_and_keeps_parts_extra(sim: str) -> None:
    """first_delay holds the whole answer back; parts_extra follow the text part."""
    call = {"functionCall": {"name": "lookup", "args": {"q": "x"}}}
    configure(sim, {"default": {"first_delay": STALL_SECONDS, "parts_extra": [call]}})
    started = time.time()
    response = call_api(sim, "POST", GENERATE_PATH)
    assert time.time() - started >= STALL_SECONDS
    parts = response.json()["candidates"][0]["content"]["parts"]
    assert parts == [{"text": answer_text(Behaviour(events=3))}, call]


@pytest.mark.integration
def test_generate_content_of_a_blocked_prompt_is_its_prompt_feedback(sim: str) -> None:
    """block_reason: no candidates, promptFeedback with the reason, as in the stream."""
    configure(sim, {"default": {"block_reason": "PROHIBITED_CONTENT"}})
    answer = call_api(sim, "POST", GENERATE_PATH).json()
    assert "candidates" not in answer
    assert answer["promptFeedback"] == {"blockReason": "PROHIBITED_CONTENT"}


@pytest.mark.integration
@pytest.mark.parametrize(("error_body", "error"), STREAM_ERRORS)
def test_generate_content_fails_whole_where_a_stream_would_break_off(
    sim: str, error_body: dict[str, Any] | None, error: dict[str, Any]
) -> None:
    """error_event_after: with no stream to end, the error is the answer, with its own status."""
    configure(sim, {"default": {"error_event_after": 1, "error_body": error_body}})
    response = call_api(sim, "POST", GENERATE_PATH)
    assert response.status_code == error["error"]["code"]
    assert response.json() == error


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
def test_models_list_refuses_a_bad_page_token(sim: str) -> None:
    """A page token the simulator never gave out is Gemini's 400."""
    response = call_api(sim, "GET", MODELS_PATH, params={"pageToken": "nonsense"})
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.integration
@pytest.mark.parametrize("model", LISTED_MODELS)
def test_get_model_describes_a_listed_model(sim: str, model: str) -> None:
    """GET /v1beta/models/{id} is the same object as in the list."""
    response = call_api(sim, "GET", f"{MODELS_PATH}/{model}")
    assert response.status_code == 200
    assert response.json() == model_info(model)


@pytest.mark.integration
@pytest.mark.parametrize("model", ["gemini-test", "gemini-9.9-ultra", "a.b_c-d"])
def test_get_model_of_an_unknown_id_is_not_found(sim: str, model: str) -> None:
    """An id that could be a model but is not listed is Gemini's 404 NOT_FOUND, naming it."""
    response = call_api(sim, "GET", f"{MODELS_PATH}/{model}")
    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"
    assert f"models/{model}" in response.json()["error"]["message"]


# Every Gemini method the simulator serves: HTTP verb, path (with query), the model it names.
API_CALLS = [
    ("POST", STREAM_PATH + "?alt=sse", "gemini-test"),
    ("POST", STREAM_PATH, "gemini-test"),
    ("POST", GENERATE_PATH, "gemini-test"),
    ("POST", COUNT_PATH, "gemini-test"),
    ("GET", MODELS_PATH + "?pageSize=2", None),
    ("GET", MODELS_PATH + "/gemini-2.5-flash", "gemini-2.5-flash"),
]
# Short, but long enough to tell a held-back answer from a prompt one.
HANG_SECONDS = 0.3


def error_of(response: requests.Response) -> dict[str, Any]:
    """A Gemini error body, unwrapped from the array that a JSON-array stream puts it in."""
    body = response.json()
    if isinstance(body, list):
        (body,) = body
    return body


@pytest.mark.integration
@pytest.mark.parametrize(("method", "path", "model"), API_CALLS)
def test_every_method_needs_a_key(sim: str, method: str, path: str, model: str | None) -> None:
    """No x-goog-api-key: Gemini's 403 for unregistered callers, whatever the method."""
    response = call_api(sim, method, path, key=None)
    assert response.status_code == 403
    assert error_of(response)["error"]["message"].startswith("Method doesn't allow unregistered")


@pytest.mark.integration
@pytest.mark.parametrize(("method", "path", "model"), API_CALLS)
def test_every_method_gets_the_key_fault_and_status(
    sim: str, method: str, path: str, model: str | None
) -> None:
    """A key's fault (with Retry-After) and its status with error_body apply to every method."""
    faults = {
        "quota-key": {"fault": "quota", "retry_delay": 2, "retry_after": 3},
        "status-key": {"status": 503, "error_body": CUSTOM_ERROR},
    }
    configure(sim, {"keys": faults})
    quota = call_api(sim, method, path, key="quota-key")
    status = call_api(sim, method, path, key="status-key")
    # The model list names no model; the quota then names the simulator's own.
    quoted = model or "gemini-sim"
    assert (quota.status_code, quota.headers["Retry-After"]) == (429, "3")
    assert error_of(quota) == fault_error("quota", key="quota-key", model=quoted, retry_delay=2)
    assert (status.status_code, error_of(status)) == (503, CUSTOM_ERROR)
    assert call_api(sim, method, path, key="other-key").status_code == 200


@pytest.mark.integration
@pytest.mark.parametrize(("method", "path", "model"), API_CALLS)
def test_every_method_hangs_before_headers(
    sim: str, method: str, path: str, model: str | None
) -> None:
    """hang_before_headers holds back the answer of every method, not just the SSE stream."""
    configure(sim, {"default": {"hang_before_headers": HANG_SECONDS}})
    started = time.time()
    response = call_api(sim, method, path)
    assert response.status_code == 200
    assert time.time() - started >= HANG_SECONDS


@pytest.mark.integration
def test_requests_log_records_every_method(sim: str) -> None:
    """Each call of each method is logged with its key, model, path, query, body and hash."""
    for number, (method, path, _) in enumerate(API_CALLS):
        call_api(sim, method, path, key=f"key-{number}")
    logged = control(sim, "requests")["requests"]
    assert [(entry["key"], entry["model"]) for entry in logged] == [
        (f"key-{number}", model) for number, (_, _, model) in enumerate(API_CALLS)
    ]
    assert [(entry["path"], entry["query"]) for entry in logged] == [
        (path.partition("?")[0], path.partition("?")[2]) for _, path, _ in API_CALLS
    ]
    posted = [method == "POST" for method, _, _ in API_CALLS]
    assert [entry["body"] for entry in logged] == [PROMPT if post else None for post in posted]
    assert [entry["body_sha256"] for entry in logged] == [
        hashlib.sha256(json.dumps(PROMPT).encode() if post else b"").hexdigest() for post in posted
    ]


# --- Google's own Python SDK against the simulator ---


@pytest.fixture
def client(sim: str) -> genai.Client:
    """A google-genai client whose base URL is the simulator, with a made-up key."""
    options = types.HttpOptions(base_url=sim, api_version="v1beta")
    return genai.Client(api_key="sim-key", http_options=options)


@pytest.mark.integration
def test_sdk_generate_content_gets_the_answer_text(sim: str, client: genai.Client) -> None:
    """generate_content's .text is the answer the simulator streams, sent with the SDK's key."""
    answer = client.models.generate_content(model="gemini-2.5-flash", contents="hi there")
    assert answer.text == answer_text(Behaviour(events=3))
    assert answer.candidates[0].finish_reason == "STOP"
    assert answer.usage_metadata.prompt_token_count == 2
    assert answer.model_version == "gemini-2.5-flash"
    (logged,) = control(sim, "requests")["requests"]
    assert (logged["key"], logged["path"]) == (
        "sim-key",
        "/v1beta/models/gemini-2.5-flash:generateContent",
    )


@pytest.mark.integration
def test_sdk_stream_chunks_join_into_the_answer_text(sim: str, client: genai.Client) -> None:
    """generate_content_stream (SSE underneath) yields one chunk per event, the same text."""
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert len(chunks) == 3
    assert "".join(chunk.text for chunk in chunks) == answer_text(Behaviour(events=3))
    assert control(sim, "requests")["requests"][0]["query"] == "alt=sse"


@pytest.mark.integration
def test_sdk_count_tokens(client: genai.Client) -> None:
    """count_tokens gets one token per word."""
    counted = client.models.count_tokens(model="gemini-2.5-flash", contents="one two three")
    assert counted.total_tokens == 3


@pytest.mark.integration
@pytest.mark.parametrize("page_size", [None, 1, 2])
def test_sdk_lists_every_model_across_pages(
    sim: str, client: genai.Client, page_size: int | None
) -> None:
    """list() follows nextPageToken: every model once, in order, whatever the page size."""
    config = {} if page_size is None else {"page_size": page_size}
    models = list(client.models.list(config=config))
    assert [model.name for model in models] == [f"models/{name}" for name in LISTED_MODELS]
    assert models[0].supported_actions == [
        "generateContent",
        "countTokens",
        "streamGenerateContent",
    ]
    pages = -(-len(LISTED_MODELS) // (page_size or 50))
    assert len(control(sim, "requests")["requests"]) == pages


@pytest.mark.integration
def test_sdk_gets_a_model_and_a_not_found_error(client: genai.Client) -> None:
    """get() describes a listed model; an unknown one raises the SDK's 404 ClientError."""
    model = client.models.get(model="gemini-2.5-flash")
    assert (model.name, model.input_token_limit, model.thinking) == (
        "models/gemini-2.5-flash",
        1048576,
        True,
    )
    with pytest.raises(errors.ClientError) as raised:
        client.models.get(model="gemini-0-none")
    assert (raised.value.code, raised.value.status) == (404, "NOT_FOUND")


@pytest.mark.integration
@pytest.mark.parametrize("streamed", [False, True])
def test_sdk_sees_a_key_fault_as_gemini_client_error(
    sim: str, client: genai.Client, streamed: bool
) -> None:
    """A quota fault on the SDK's key is the SDK's ClientError 429 with Gemini's body."""
    configure(sim, {"keys": {"sim-key": {"fault": "quota", "retry_delay": 1}}})
    with pytest.raises(errors.ClientError) as raised:
        if streamed:
            list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
        else:
            client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert (raised.value.code, raised.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert raised.value.details == fault_error(
        "quota", key="sim-key", model="gemini-2.5-flash", retry_delay=1
    )


@pytest.mark.integration
def test_a_raw_body_is_streamed_exactly_as_given(sim: str) -> None:
    """raw_body replays a recorded stream byte for byte, CRLFs and all."""
    recorded = 'data: {"candidates": []}\r\n\r\ndata: {"x": "é"}\r\n\r\n'
    configure(sim, {"default": {"raw_body": recorded}})
    with generate(sim) as response:
        assert response.raw.read() == recorded.encode()
