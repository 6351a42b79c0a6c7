"""The /generate body: what is refused (400, naming the problem) and what passes through as is."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from greenlet import getcurrent

from app.bodies import check_body
from app.config import MODEL_NAME_RULE, Config, ConfigError
from app.errors import ApiError
from app.schemas import (
    MAX_CONTENTS,
    MAX_PARTS,
    OpenAIEndpoint,
    validate_batch_embed_request,
    validate_embed_request,
    validate_generate_request,
    validate_model,
    validate_openai_request,
)
from tests.client import PROMPT
from tests.fakes import AUTH, PASSWORD

VALID = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"contents": "\xc3"}', "not valid UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"[]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"{}", "contents: Missing data"),
        (b'{"contents": null}', "contents"),
        (b'{"contents": []}', "contents: Shorter than minimum length 1"),
        (b'{"contents": {"parts": []}}', "contents: Not a valid list"),
        (b'{"contents": ["hi"]}', "contents.0: Invalid input type"),
        (b'{"contents": [{"role": "user"}]}', "contents.0.parts: Missing data"),
        (b'{"contents": [{"parts": {"text": "x"}}]}', "contents.0.parts: Not a valid list"),
        (b'{"contents": [{"parts": []}]}', "contents.0.parts: Shorter than minimum length 1"),
        (b'{"contents": [{"parts": ["hi"]}]}', "contents.0.parts.0: Not a valid mapping"),
        (b'{"contents": [{"parts": [{}]}, {"parts": 3}]}', "contents.1.parts: Not a valid list"),
    ],
)
def test_bad_bodies_are_refused_with_a_400_naming_the_problem(raw: bytes, named: str) -> None:
    """Each malformed body raises ApiError(400) whose message says what is wrong."""
    with pytest.raises(ApiError) as caught:
        validate_generate_request(raw)
    assert caught.value.code == 400
    assert named in caught.value.message


def test_a_body_check_runs_in_a_greenlet_of_its_own_that_ends_with_it() -> None:
    """check_body gives the check's result; the check ran apart from the caller, and is over."""
    ran_in = []

    def check(raw: bytes, suffix: str) -> str:
        ran_in.append(getcurrent())
        return raw.decode() + suffix

    assert check_body(check, b"gemini", "-2.5") == "gemini-2.5"
    assert ran_in[0] is not getcurrent()
    assert ran_in[0].dead


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b"{}", b"\xff"])
def test_a_body_checks_error_reaches_the_caller_as_the_check_raised_it(raw: bytes) -> None:
    """Run apart, the check refuses a body just as it does when called directly."""
    with pytest.raises(ApiError) as direct:
        validate_generate_request(raw)
    with pytest.raises(ApiError) as apart:
        check_body(validate_generate_request, raw)
    assert (apart.value.code, apart.value.message) == (direct.value.code, direct.value.message)


@pytest.mark.parametrize(
    "extra",
    [
        {"systemInstruction": {"parts": [{"text": "be brief"}]}},
        {"generationConfig": {"temperature": 0.2, "thinkingConfig": {"thinkingBudget": 0}}},
        {"generation_config": {"max_output_tokens": 5}, "system_instruction": {"parts": []}},
        {"tools": [{"functionDeclarations": [{"name": "f"}]}], "toolConfig": {}},
        {"safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}]},
        {"cachedContent": "cachedContents/abc", "someFutureField": [1, {"x": None}]},
    ],
)
def test_valid_bodies_pass_with_fields_the_schema_does_not_know(extra: dict) -> None:
    """Fields the schema does not know, snake_case ones too, are no reason to refuse a body."""
    validate_generate_request(json.dumps({**VALID, **extra}).encode())


@pytest.mark.parametrize(
    ("contents", "named"),
    [
        ([{"parts": [{}]}] * (MAX_CONTENTS + 1), f"more than {MAX_CONTENTS} entries"),
        ([{"parts": [{}] * 1000}] * (MAX_PARTS // 1000 + 1), f"more than {MAX_PARTS} parts"),
    ],
    ids=["contents", "parts"],
)
def test_oversized_contents_are_refused_before_the_slow_validation(
    contents: list, named: str
) -> None:
    """More entries or parts than any real conversation: 400, without walking them all."""
    with pytest.raises(ApiError) as caught:
        validate_generate_request(json.dumps({"contents": contents}).encode())
    assert caught.value.code == 400
    assert named in caught.value.message


def test_the_largest_allowed_contents_still_pass() -> None:
    """Exactly at the caps is fine."""
    contents = [{"parts": [{}] * 5}] * MAX_CONTENTS
    assert sum(len(c["parts"]) for c in contents) == MAX_PARTS
    validate_generate_request(json.dumps({"contents": contents}).encode())


@pytest.mark.parametrize("name", ["models/x", "../admin", "a:b", "", ".", "..", "a..b", "a" * 129])
def test_one_model_name_rule_says_the_same_in_the_config_and_both_routes(
    client: FlaskClient, name: str
) -> None:
    """MODEL_ID, /generate's ?model= and the native model segment: one rule, one message."""
    with pytest.raises(ConfigError) as config:
        Config(api_keys=("k",), model_id=name)
    generate = client.post("/generate", json=PROMPT, headers=AUTH, query_string={"model": name})
    native = client.post(
        f"/v1beta/models/{quote(name, safe='')}:generateContent",
        json=PROMPT,
        headers={"x-goog-api-key": PASSWORD},
    )
    assert str(config.value) == f"MODEL_ID: {MODEL_NAME_RULE}"
    assert generate.status_code == 400
    assert generate.json["error"]["message"] == f"model {MODEL_NAME_RULE}"
    if name and "/" not in name:  # else the path names no model route: a 404 of its own
        assert native.status_code == 400 and native.json == generate.json


def test_a_valid_model_name_is_returned_as_it_is() -> None:
    """The rule lets Gemini's own names through."""
    assert validate_model("gemini-2.5-flash-lite_001") == "gemini-2.5-flash-lite_001"


EMBED = {"content": {"parts": [{"text": "hi"}]}}


@pytest.mark.parametrize(
    ("validate", "raw", "named"),
    [
        (validate_embed_request, b"[]", "must be a JSON object"),
        (validate_embed_request, b"{}", "content: Missing data"),
        (validate_embed_request, b'{"content": "hi"}', "content: Invalid input type"),
        (validate_embed_request, b'{"content": {"parts": []}}', "content.parts: Shorter"),
        (validate_batch_embed_request, b"{}", "requests: Missing data"),
        (validate_batch_embed_request, b'{"requests": []}', "requests: Shorter"),
        (validate_batch_embed_request, b'{"requests": [{}]}', "requests.0.content: Missing"),
        (
            validate_batch_embed_request,
            json.dumps({"requests": [EMBED] * (MAX_CONTENTS + 1)}).encode(),
            "requests: more than",
        ),
        (
            validate_embed_request,
            json.dumps({"content": {"parts": [{}] * (MAX_PARTS + 1)}}).encode(),
            f"content: more than {MAX_PARTS} parts",
        ),
        (
            validate_batch_embed_request,
            json.dumps({"requests": [{"content": {"parts": [{}] * 1000}}] * 51}).encode(),
            f"requests: more than {MAX_PARTS} parts",
        ),
    ],
    ids=[
        "embed-not-object",
        "embed-no-content",
        "embed-content-not-object",
        "embed-no-parts",
        "batch-no-requests",
        "batch-empty",
        "batch-request-without-content",
        "batch-too-many",
        "embed-too-many-parts",
        "batch-too-many-parts",
    ],
)
def test_bad_embedding_bodies_are_refused_naming_the_problem(
    validate: Callable[[bytes], None], raw: bytes, named: str
) -> None:
    with pytest.raises(ApiError) as caught:
        validate(raw)
    assert caught.value.code == 400
    assert named in caught.value.message


def test_embedding_bodies_pass_with_their_other_fields() -> None:
    validate_embed_request(json.dumps({**EMBED, "outputDimensionality": 8}).encode())
    validate_batch_embed_request(json.dumps({"requests": [{**EMBED, "model": "m"}]}).encode())


CHAT = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("endpoint", "body", "named"),
    [
        ("chat", [CHAT], "must be a JSON object"),
        ("chat", {"messages": CHAT["messages"]}, "model: a model name is required"),
        ("chat", {**CHAT, "model": None}, "model: a model name is required"),
        ("chat", {**CHAT, "model": "models/../x"}, "model "),
        ("chat", {"model": "gemini-2.5-flash"}, "messages: Missing data"),
        ("chat", {**CHAT, "messages": []}, "messages: Shorter"),
        ("chat", {**CHAT, "messages": "hi"}, "messages: Not a valid list"),
        ("chat", {**CHAT, "messages": [{}] * (MAX_CONTENTS + 1)}, "messages: more than"),
        ("embeddings", {"model": "gemini-embedding-001"}, "input: Missing data"),
        ("embeddings", {"model": "gemini-embedding-001", "input": ""}, "input: must be"),
        ("embeddings", {"model": "gemini-embedding-001", "input": []}, "input: must be"),
        ("embeddings", {"model": "gemini-embedding-001", "input": 5}, "input: must be"),
        ("embeddings", {"model": "gemini-embedding-001", "input": {}}, "input: must be"),
    ],
    ids=[
        "not-object",
        "no-model",
        "model-null",
        "unsafe-model",
        "no-messages",
        "empty-messages",
        "messages-not-list",
        "too-many-messages",
        "no-input",
        "empty-input",
        "empty-input-list",
        "input-a-number",
        "input-an-object",
    ],
)
def test_bad_openai_bodies_are_refused_naming_the_problem(
    endpoint: OpenAIEndpoint, body: object, named: str
) -> None:
    with pytest.raises(ApiError) as caught:
        validate_openai_request(json.dumps(body).encode(), endpoint)
    assert caught.value.code == 400
    assert named in caught.value.message


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("chat", CHAT),
        ("chat", {**CHAT, "model": "models/gemini-2.5-flash", "stream": True, "tools": []}),
        ("embeddings", {"model": "gemini-2.5-flash", "input": ["a", "b"], "dimensions": 4}),
    ],
    ids=["chat", "chat-with-models-prefix-and-extras", "embeddings"],
)
def test_an_openai_body_gives_its_model_without_gemini_s_prefix(
    endpoint: OpenAIEndpoint, body: dict
) -> None:
    assert validate_openai_request(json.dumps(body).encode(), endpoint) == "gemini-2.5-flash"
