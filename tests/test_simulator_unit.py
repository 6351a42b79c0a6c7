"""The simulator's pure parts, without sockets: the answers it builds, Gemini's error bodies,
the checks of a configuration, the wire framing, the model list, the embeddings, the
OpenAI-compatible shapes and the routing of a request."""

import json
from typing import Any

import pytest

from simulator import (
    ANSWER_WORDS,
    DEFAULT_DIMENSIONS,
    DEFAULT_EVENTS,
    DEFAULT_WORDS_PER_EVENT,
    FAULTS,
    OPENAI_DONE,
    Behaviour,
    ConfigError,
    api_method,
    batch_embed_contents,
    chat_chunks,
    chat_completion,
    count_prompt_tokens,
    embed_content,
    embedding_list,
    embedding_values,
    fault_error,
    format_duration,
    frame_array_element,
    frame_array_error,
    frame_bare_error,
    frame_event,
    frame_openai_event,
    list_models,
    merge_events,
    message_tokens,
    model_ids,
    model_info,
    model_list,
    model_object,
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
        ({"pageSize": ["5"]}, LISTED_MODELS, None),
        ({"pageSize": ["2"]}, LISTED_MODELS[:2], "2"),
        ({"pageSize": ["2"], "pageToken": ["2"]}, LISTED_MODELS[2:4], "4"),
        ({"pageSize": ["3"], "pageToken": ["2"]}, LISTED_MODELS[2:], None),
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
    [{"pageSize": ["-1"]}, {"pageSize": ["many"]}, {"pageToken": ["5"]}, {"pageToken": ["x"]}],
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
    ("method", "path", "route"),
    [
        ("POST", STREAM_PATH, ("models.streamGenerateContent", "gemini-test", "v1beta")),
        ("POST", GENERATE_PATH, ("models.generateContent", "gemini-test", "v1beta")),
        ("POST", COUNT_PATH, ("models.countTokens", "gemini-test", "v1beta")),
        ("GET", "/v1beta/models", ("models.list", None, "v1beta")),
        ("GET", "/v1beta/models/gemini-2.5-pro", ("models.get", "gemini-2.5-pro", "v1beta")),
        ("GET", "/v1beta/models/unknown-1.0", ("models.get", "unknown-1.0", "v1beta")),
        ("POST", "/v1beta/models/m:embedContent", ("models.embedContent", "m", "v1beta")),
        ("POST", "/v1/models/m:batchEmbedContents", ("models.batchEmbedContents", "m", "v1")),
        ("POST", "/v1/models/m:generateContent", ("models.generateContent", "m", "v1")),
        ("POST", "/v1/models/m:streamGenerateContent", ("models.streamGenerateContent", "m", "v1")),
        ("GET", "/v1/models", ("models.list", None, "v1")),
        ("GET", "/v1/models/m", ("models.get", "m", "v1")),
        ("GET", STREAM_PATH, (None, "gemini-test", "v1beta")),
        ("POST", "/v1beta/models", (None, None, "v1beta")),
        ("DELETE", "/v1beta/models/gemini-2.5-pro", (None, "gemini-2.5-pro", "v1beta")),
        ("POST", "/v1beta/models/m:predict", (None, "m", "v1beta")),
        ("GET", "/v1beta/models/gemini-test:get", (None, "gemini-test", "v1beta")),
        ("GET", "/v1beta/models/", (None, None, None)),
        ("GET", "/v1beta/models/a/b", (None, None, None)),
        ("GET", "/v2/models", (None, None, None)),
        ("POST", "/v1beta/openai/chat/completions", ("openai.chat.completions", None, "v1beta")),
        ("POST", "/v1beta/openai/embeddings", ("openai.embeddings", None, "v1beta")),
        ("GET", "/v1beta/openai/models", ("openai.models.list", None, "v1beta")),
        ("GET", "/v1beta/openai/models/m", ("openai.models.retrieve", "m", "v1beta")),
        ("GET", "/v1beta/openai/models/models/m", ("openai.models.retrieve", "m", "v1beta")),
        ("GET", "/v1beta/openai/chat/completions", (None, None, "v1beta")),
        ("POST", "/v1beta/openai/models", (None, None, "v1beta")),
        ("POST", "/v1beta/openai/completions", (None, None, "v1beta")),
        ("POST", "/v1/openai/chat/completions", (None, None, None)),
    ],
)
def test_api_method_names_the_method_model_and_version_of_a_request(
    method: str, path: str, route: tuple[str | None, str | None, str | None]
) -> None:
    """Each served path and verb has its method name, under /v1 and /v1beta alike and on the
    OpenAI-compatible path; anything else none, the model and version still read."""
    assert api_method(method, path) == route


# --- Embeddings ---


def test_an_embedding_is_the_same_for_the_same_text_and_differs_between_texts() -> None:
    """Deterministic: the values depend on the text only; 768 of them in [-1, 1) by default."""
    values = embedding_values("hello café")
    assert len(values) == DEFAULT_DIMENSIONS
    assert values == embedding_values("hello café")
    assert values != embedding_values("hello cafe")
    assert all(-1 <= value < 1 for value in values)
    assert len(set(values)) > DEFAULT_DIMENSIONS // 2


def test_a_shorter_embedding_is_the_start_of_a_longer_one() -> None:
    """Like Gemini's Matryoshka embeddings, outputDimensionality truncates the same vector."""
    assert embedding_values("text", 16) == embedding_values("text", 3072)[:16]


def test_embed_content_embeds_the_text_parts_of_the_content() -> None:
    """embedContent's answer: `{"embedding": {"values"}}` for the text parts joined by newlines."""
    parts = [{"text": "one"}, {"inlineData": {}}, {"text": "two"}]
    body = {"content": {"parts": parts}, "outputDimensionality": 3}
    assert embed_content(body) == {"embedding": {"values": embedding_values("one\ntwo", 3)}}


def test_batch_embed_contents_answers_one_embedding_per_request() -> None:
    """batchEmbedContents' answer: `{"embeddings": [{"values"}, ...]}` in request order."""
    requests = [{"content": {"parts": [{"text": text}]}} for text in ("a", "b", "a")]
    answer = batch_embed_contents({"requests": requests})
    assert answer == {"embeddings": [{"values": embedding_values(text)} for text in "aba"]}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"content": "text"},
        {"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 0},
        {"content": {"parts": [{"text": "x"}]}, "outputDimensionality": True},
        {"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 4096},
    ],
)
def test_embed_content_refuses_a_body_without_content_or_with_a_bad_size(body: Any) -> None:
    """No Content, or a size outside 1..3072: ValueError (the server's 400)."""
    with pytest.raises(ValueError):
        embed_content(body)


@pytest.mark.parametrize("body", [{}, {"requests": []}, {"requests": [1]}, {"requests": [{}]}])
def test_batch_embed_contents_refuses_missing_or_bad_requests(body: Any) -> None:
    """No list of requests, or a request that is no embedContent body: ValueError."""
    with pytest.raises(ValueError):
        batch_embed_contents(body)


def test_embedding_models_are_listed_with_embed_content() -> None:
    """The embedding models come after the generative ones, described as Gemini does."""
    assert model_ids()[-2:] == ["gemini-embedding-001", "text-embedding-004"]
    assert model_info("text-embedding-004") == {
        "name": "models/text-embedding-004",
        "version": "004",
        "displayName": "Text Embedding 004",
        "description": "Obtain a distributed representation of a text.",
        "inputTokenLimit": 2048,
        "outputTokenLimit": 1,
        "supportedGenerationMethods": ["embedContent"],
    }
    info = model_info("gemini-embedding-001")
    assert info is not None and "embedContent" in info["supportedGenerationMethods"]


# --- Gemini's OpenAI-compatible shapes ---


def assert_keys_sorted(value: Any) -> None:
    """Gemini writes its OpenAI-compatible objects with alphabetically ordered keys, all levels."""
    if isinstance(value, dict):
        assert list(value) == sorted(value)
        for each in value.values():
            assert_keys_sorted(each)
    elif isinstance(value, list):
        for each in value:
            assert_keys_sorted(each)


CREATED = 1750000000


def test_chat_chunks_carry_each_events_text_with_finish_and_usage_on_the_last() -> None:
    """One chunk per event; every delta says role assistant; the last one finish and usage."""
    events = list(sse_events(Behaviour(events=3, words_per_event=2), prompt_tokens=4))
    chunks = list(chat_chunks(events, model="gemini-test", created=CREATED))
    assert [chunk["choices"][0]["delta"] for chunk in chunks] == [
        {"content": text, "role": "assistant"} for text in texts(events)
    ]
    assert [chunk["choices"][0].get("finish_reason") for chunk in chunks] == [None, None, "stop"]
    assert ["usage" in chunk for chunk in chunks] == [False, False, True]
    assert chunks[-1]["usage"] == {"completion_tokens": 6, "prompt_tokens": 4, "total_tokens": 10}
    assert chunks[0] | {"choices": None} == {
        "choices": None,
        "created": CREATED,
        "id": "sim-response",
        "model": "gemini-test",
        "object": "chat.completion.chunk",
    }
    assert_keys_sorted(chunks)


def test_chat_chunks_leave_thoughts_out() -> None:
    """Thought-only events say nothing on this path; the answer's text is unchanged."""
    events = list(sse_events(Behaviour(events=2, thought_events=2)))
    chunks = list(chat_chunks(events, model="m", created=CREATED))
    assert len(chunks) == 2
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "".join(
        texts(events[2:])
    )


@pytest.mark.parametrize(("tools", "calls"), [(True, 2), (False, 0)])
def test_function_calls_are_tool_calls_only_when_tools_were_offered(
    tools: bool, calls: int
) -> None:
    """Streamed: indexed tool_calls beside the last text, finish_reason still "stop" as Gemini
    streams it; whole: tool_calls and finish_reason tool_calls."""
    extra = [{"functionCall": {"name": f"f{n}", "args": {"n": n}}} for n in range(2)]
    behaviour = Behaviour(events=2, parts_extra=extra)
    last = list(chat_chunks(sse_events(behaviour), model="m", created=CREATED, tools=tools))[-1]
    whole = chat_completion(sse_events(behaviour), model="m", created=CREATED, tools=tools)
    streamed = last["choices"][0]["delta"].get("tool_calls", [])
    assert [(call["index"], call["id"]) for call in streamed] == [
        (n, f"function-call-{n}") for n in range(calls)
    ]
    assert last["choices"][0]["finish_reason"] == "stop"
    message = whole["choices"][0]["message"]
    assert [call["function"] for call in message.get("tool_calls", [])] == [
        {"arguments": json.dumps({"n": n}), "name": f"f{n}"} for n in range(calls)
    ]
    assert whole["choices"][0]["finish_reason"] == ("tool_calls" if tools else "stop")
    assert_keys_sorted([last, whole])


@pytest.mark.parametrize(
    ("behaviour", "finish_reason"),
    [
        (Behaviour(events=2), "stop"),
        (Behaviour(events=2, finish_reason="MAX_TOKENS"), "length"),
        (Behaviour(events=2, finish_reason="SAFETY"), "content_filter"),
        (Behaviour(events=2, finish_reason="OTHER"), "stop"),
        (Behaviour(block_reason="SAFETY"), "content_filter"),
    ],
)
def test_chat_completion_is_the_whole_answer_with_openai_finish_reason(
    behaviour: Behaviour, finish_reason: str
) -> None:
    """The merged answer's text, Gemini's finishReason as OpenAI's, usage; a blocked prompt
    finishes as content_filter with no content."""
    events = list(sse_events(behaviour, prompt_tokens=3))
    completion = chat_completion(events, model="m", created=CREATED)
    (choice,) = completion["choices"]
    assert choice["finish_reason"] == finish_reason
    assert choice["message"].get("content", "") == "".join(texts(candidate_events(events)))
    assert completion["object"] == "chat.completion"
    assert completion["usage"]["prompt_tokens"] == 3
    assert_keys_sorted(completion)


@pytest.mark.parametrize(
    ("body", "tokens"),
    [
        ({"messages": [{"role": "user", "content": "one two"}]}, 2),
        ({"messages": [{"content": [{"type": "text", "text": "a b c"}, {"type": "image"}]}]}, 3),
        ({"messages": [{"content": "x"}, {"content": None}, "junk"]}, 1),
        ({}, 1),
        (None, 1),
    ],
)
def test_message_tokens_are_the_words_of_the_messages(body: Any, tokens: int) -> None:
    """prompt_tokens counts the words of string and text-part contents, at least 1."""
    assert message_tokens(body) == tokens


def test_embedding_list_is_openais_list_of_the_native_values() -> None:
    """A text or list of texts: OpenAI's list object, values as the native methods give them."""
    answer = embedding_list({"model": "models/e", "input": "one two", "dimensions": 5})
    assert answer == {
        "data": [{"embedding": embedding_values("one two", 5), "index": 0, "object": "embedding"}],
        "model": "e",
        "object": "list",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    assert_keys_sorted(answer)


@pytest.mark.parametrize(
    "body",
    [{"input": "x"}, {"model": "e"}, {"model": "e", "input": []}, {"model": "e", "input": 3}],
)
def test_embedding_list_refuses_no_model_or_no_texts(body: dict[str, Any]) -> None:
    """No model, or an input that is no text nor list of texts: ValueError (the server's 400)."""
    with pytest.raises(ValueError):
        embedding_list(body)


def test_openai_model_list_names_every_model_as_gemini_does() -> None:
    """OpenAI's list of model objects, with Gemini's `models/` ids, owned by google."""
    assert model_list() == {
        "data": [
            {"id": f"models/{name}", "object": "model", "owned_by": "google"}
            for name in LISTED_MODELS
        ],
        "object": "list",
    }
    assert model_object("gemini-2.5-flash") == model_list()["data"][0]
    assert model_object("gemini-test") is None


def test_openai_event_is_compact_json_after_data_ending_with_lf_lf() -> None:
    """The OpenAI-compatible stream's framing: `data: ` + compact UTF-8 JSON + LF LF; [DONE]."""
    assert frame_openai_event({"a": "café"}) == 'data: {"a":"café"}\n\n'.encode()
    assert OPENAI_DONE == b"data: [DONE]\n\n"
