"""The simulator's pure parts, without sockets: the answers it builds, Gemini's error bodies,
the checks of a configuration, the wire framing, the model list and the routing of a request."""

import json
from typing import Any

import pytest

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
from tests.gemini_wire import (
    COUNT_PATH,
    CUSTOM_ERROR,
    GENERATE_PATH,
    LISTED_MODELS,
    PROMPT,
    RPC,
    STREAM_PATH,
    UNAVAILABLE_BODY,
    candidate_events,
    detail,
    parse_array,
    texts,
)

PROXY_CHUNK_TOKENS = 50


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
    assert len(candidate_events(events)) == answers
    assert events[-1] == UNAVAILABLE_BODY


def test_error_event_is_the_configured_error_body_when_there_is_one() -> None:
    """error_body replaces the default 503 as the error that ends the stream."""
    events = list(sse_events(Behaviour(events=3, error_event_after=1, error_body=CUSTOM_ERROR)))
    assert len(candidate_events(events)) == 1
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
