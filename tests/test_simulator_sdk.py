"""Google's own Python SDK (google-genai) against the simulator: what Gemini's clients see."""

import pytest
from google import genai
from google.genai import errors, types

from simulator import Behaviour, fault_error
from tests.gemini_wire import LISTED_MODELS, answer_text
from tests.servers import configure, control

pytestmark = pytest.mark.integration


@pytest.fixture
def sdk(sim: str) -> genai.Client:
    """A google-genai client whose base URL is the simulator, with a made-up key."""
    options = types.HttpOptions(base_url=sim, api_version="v1beta")
    return genai.Client(api_key="sim-key", http_options=options)


def test_sdk_generate_content_gets_the_answer_text(sim: str, sdk: genai.Client) -> None:
    """generate_content's .text is the answer the simulator streams, sent with the SDK's key."""
    answer = sdk.models.generate_content(model="gemini-2.5-flash", contents="hi there")
    assert answer.text == answer_text(Behaviour(events=3))
    assert answer.candidates[0].finish_reason == "STOP"
    assert answer.usage_metadata.prompt_token_count == 2
    assert answer.model_version == "gemini-2.5-flash"
    (logged,) = control(sim, "requests")["requests"]
    assert (logged["key"], logged["path"]) == (
        "sim-key",
        "/v1beta/models/gemini-2.5-flash:generateContent",
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
