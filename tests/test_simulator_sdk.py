"""The clients people use, against the simulator directly: Google's own Python SDK
(google-genai) with its default API version (v1) and with v1beta, LangChain's Gemini chat model
with its defaults, and OpenAI's Python SDK on Gemini's OpenAI-compatible path. What Gemini's
clients see is what the proxy's tests will see through the proxy."""

import openai
import pytest
from google import genai
from google.genai import errors, types
from langchain_google_genai import ChatGoogleGenerativeAI

from simulator import Behaviour, embedding_values, fault_error
from tests.gemini_wire import (
    EMBEDDING_MODEL,
    LISTED_MODELS,
    answer_text,
    embed_with_sdk,
    tool_call_with_sdk,
)
from tests.servers import configure, control

pytestmark = pytest.mark.integration

# google-genai's own default (None) is v1; clients that set api_version usually say v1beta.
API_VERSIONS = [None, "v1beta"]
SDK_DEFAULT_VERSION = "v1"


@pytest.fixture(params=API_VERSIONS, ids=["default", "v1beta"])
def api_version(request: pytest.FixtureRequest) -> str | None:
    """The api_version a test's google-genai client is given: none (the SDK's own), or v1beta."""
    return request.param


@pytest.fixture
def sdk(sim: str, api_version: str | None) -> genai.Client:
    """A google-genai client whose base URL is the simulator, with a made-up key."""
    options = types.HttpOptions(base_url=sim, api_version=api_version)
    return genai.Client(api_key="sim-key", http_options=options)


@pytest.fixture
def oai(sim: str) -> openai.OpenAI:
    """OpenAI's SDK pointed at Gemini's OpenAI-compatible path on the simulator; no retries, so
    a 429 surfaces at once."""
    return openai.OpenAI(api_key="sim-key", base_url=f"{sim}/v1beta/openai/", max_retries=0)


def test_sdk_generate_content_gets_the_answer_text(
    sim: str, sdk: genai.Client, api_version: str | None
) -> None:
    """generate_content's .text is the answer the simulator streams, sent with the SDK's key to
    the version asked for: with only base_url set, google-genai calls /v1/ (why the simulator
    serves /v1 too)."""
    answer = sdk.models.generate_content(model="gemini-2.5-flash", contents="hi there")
    assert answer.text == answer_text(Behaviour(events=3))
    assert answer.candidates[0].finish_reason == "STOP"
    assert answer.usage_metadata.prompt_token_count == 2
    assert answer.model_version == "gemini-2.5-flash"
    (logged,) = control(sim, "requests")["requests"]
    assert (logged["key"], logged["path"]) == (
        "sim-key",
        f"/{api_version or SDK_DEFAULT_VERSION}/models/gemini-2.5-flash:generateContent",
    )


def test_sdk_stream_chunks_join_into_the_answer_text(sim: str, sdk: genai.Client) -> None:
    """generate_content_stream (SSE underneath) yields one chunk per event, the same text."""
    chunks = list(sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert len(chunks) == 3
    assert "".join(chunk.text for chunk in chunks) == answer_text(Behaviour(events=3))
    assert control(sim, "requests")["requests"][0]["query"] == "alt=sse"


def test_sdk_count_tokens(sdk: genai.Client) -> None:
    """count_tokens gets one token per word."""
    counted = sdk.models.count_tokens(model="gemini-2.5-flash", contents="one two three")
    assert counted.total_tokens == 3


@pytest.mark.parametrize("page_size", [None, 1, 2])
def test_sdk_lists_every_model_across_pages(
    sim: str, sdk: genai.Client, page_size: int | None
) -> None:
    """list() follows nextPageToken: every model once, in order, whatever the page size."""
    config = {} if page_size is None else {"page_size": page_size}
    models = list(sdk.models.list(config=config))
    assert [model.name for model in models] == [f"models/{name}" for name in LISTED_MODELS]
    assert models[0].supported_actions == [
        "generateContent",
        "countTokens",
        "streamGenerateContent",
    ]
    pages = -(-len(LISTED_MODELS) // (page_size or 50))
    assert len(control(sim, "requests")["requests"]) == pages


def test_sdk_gets_a_model_and_a_not_found_error(sdk: genai.Client) -> None:
    """get() describes a listed model; an unknown one raises the SDK's 404 ClientError."""
    model = sdk.models.get(model="gemini-2.5-flash")
    assert (model.name, model.input_token_limit, model.thinking) == (
        "models/gemini-2.5-flash",
        1048576,
        True,
    )
    with pytest.raises(errors.ClientError) as raised:
        sdk.models.get(model="gemini-0-none")
    assert (raised.value.code, raised.value.status) == (404, "NOT_FOUND")


@pytest.mark.parametrize("streamed", [False, True])
def test_sdk_sees_a_key_fault_as_gemini_client_error(
    sim: str, sdk: genai.Client, streamed: bool
) -> None:
    """A quota fault on the SDK's key is the SDK's ClientError 429 with Gemini's body."""
    configure(sim, {"keys": {"sim-key": {"fault": "quota", "retry_delay": 1}}})
    with pytest.raises(errors.ClientError) as raised:
        if streamed:
            list(sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
        else:
            sdk.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert (raised.value.code, raised.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert raised.value.details == fault_error(
        "quota", key="sim-key", model="gemini-2.5-flash", retry_delay=1
    )


def test_sdk_embed_content_gets_one_embedding_per_text(sim: str, sdk: genai.Client) -> None:
    """embed_content (batchEmbedContents underneath) gets the simulator's values per text."""
    embed_with_sdk(sdk)
    (logged,) = control(sim, "requests")["requests"]
    assert logged["path"].endswith(f"/models/{EMBEDDING_MODEL}:batchEmbedContents")


def test_sdk_function_call_comes_back_as_a_function_call(sim: str, sdk: genai.Client) -> None:
    """A scripted functionCall part is the SDK's function_calls, args decoded."""
    call = {"functionCall": {"name": "lookup", "args": {"q": "x"}}}
    configure(sim, {"default": {"parts_extra": [call]}})
    answer = sdk.models.generate_content(model="gemini-2.5-flash", contents="find x")
    (function_call,) = answer.function_calls
    assert (function_call.name, function_call.args) == ("lookup", {"q": "x"})


def test_langchain_with_its_defaults_gets_the_answer(sim: str) -> None:
    """ChatGoogleGenerativeAI with only base_url and a key (so API version v1) invokes and
    streams the simulator's answer."""
    chat = ChatGoogleGenerativeAI(model="gemini-2.5-flash", google_api_key="lc-key", base_url=sim)
    assert chat.invoke("hi there").text == answer_text(Behaviour(events=3))
    pieces = [piece.text for piece in chat.stream("hi there")]
    assert "".join(pieces) == answer_text(Behaviour(events=3))
    logged = control(sim, "requests")["requests"]
    assert {entry["key"] for entry in logged} == {"lc-key"}
    assert all(entry["path"].startswith("/v1/models/gemini-2.5-flash:") for entry in logged)


# --- OpenAI's Python SDK on Gemini's OpenAI-compatible path ---


def test_openai_chat_completion(sim: str, oai: openai.OpenAI) -> None:
    """chat.completions.create: the answer text, stop, usage; the key went as Bearer."""
    completion = oai.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi there"}]
    )
    (choice,) = completion.choices
    assert choice.message.content == answer_text(Behaviour(events=3))
    assert (choice.finish_reason, completion.usage.prompt_tokens) == ("stop", 2)
    (logged,) = control(sim, "requests")["requests"]
    assert (logged["key"], logged["model"]) == ("sim-key", "gemini-2.5-flash")


def test_openai_streamed_chat_completion(oai: openai.OpenAI) -> None:
    """stream=True: the SDK reads every chunk up to [DONE]; the deltas join into the answer."""
    stream = oai.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(stream)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == answer_text(
        Behaviour(events=3)
    )
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.total_tokens > 0


def test_openai_models_list(oai: openai.OpenAI) -> None:
    """models.list gets every model under Gemini's ids; retrieve gets one."""
    assert [model.id for model in oai.models.list()] == [f"models/{m}" for m in LISTED_MODELS]
    assert oai.models.retrieve("gemini-2.5-pro").owned_by == "google"


def test_openai_embeddings(oai: openai.OpenAI) -> None:
    """embeddings.create gets the simulator's values, in float despite the SDK's base64 ask."""
    embedded = oai.embeddings.create(model=EMBEDDING_MODEL, input=["a b", "c"], dimensions=4)
    assert [each.embedding for each in embedded.data] == [
        embedding_values("a b", 4),
        embedding_values("c", 4),
    ]


@pytest.mark.parametrize("streamed", [False, True])
def test_openai_tool_call(sim: str, oai: openai.OpenAI, streamed: bool) -> None:
    """With tools offered, the scripted functionCall is the SDK's tool call, whole or streamed."""
    tool_call_with_sdk(oai, sim, streamed)


@pytest.mark.parametrize("streamed", [False, True])
def test_openai_sdk_raises_rate_limit_error_on_a_quota_fault(
    sim: str, oai: openai.OpenAI, streamed: bool
) -> None:
    """A quota fault on this path (a list-wrapped 429) is the SDK's RateLimitError, Gemini's
    body and its RetryInfo in it."""
    configure(sim, {"keys": {"sim-key": {"fault": "quota", "retry_delay": 7}}})
    with pytest.raises(openai.RateLimitError) as raised:
        oai.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}], stream=streamed
        )
    assert raised.value.status_code == 429
    assert raised.value.body == [
        fault_error("quota", key="sim-key", model="gemini-2.5-flash", retry_delay=7)
    ]
