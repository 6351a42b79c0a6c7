"""The Python clients people use, through the proxy (the real gunicorn in front of the
simulator), each given only the proxy's URL as its base and the proxy's password as its key:
google-genai with its default API version (v1) and with v1beta, langchain-google-genai with its
defaults, and OpenAI's SDK on Gemini's OpenAI-compatible API. Gemini only ever sees pool keys."""

from __future__ import annotations

import json

import openai
import pytest
from google import genai
from google.genai import types
from langchain_google_genai import ChatGoogleGenerativeAI

from simulator import Behaviour, embedding_values
from tests.client import calls_per_key, cooldowns, metric, upstream_calls
from tests.gemini_wire import (
    EMBEDDING_MODEL,
    LISTED_MODELS,
    answer_text,
    embed_with_sdk,
    tool_call_with_sdk,
)
from tests.servers import KEYS, PASSWORD, ProxyServer, configure

pytestmark = pytest.mark.integration

MODEL = "gemini-2.5-flash"
ANSWER = answer_text(Behaviour(events=3))
# google-genai's own default (None) is v1; clients that set api_version usually say v1beta.
SDK_DEFAULT_VERSION = "v1"
OPENAI_PATH = "/v1beta/openai/"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi there"}]}


@pytest.fixture
def proxy(own_proxy: ProxyServer) -> ProxyServer:
    """This module's own proxy, so key penalties here stay here."""
    return own_proxy


@pytest.fixture(params=[None, "v1beta"], ids=["default-version", "v1beta"])
def api_version(request: pytest.FixtureRequest) -> str | None:
    """The api_version a google-genai client is given: none (the SDK's own, v1), or v1beta."""
    return request.param


@pytest.fixture
def sdk(proxy: ProxyServer, api_version: str | None) -> genai.Client:
    """google-genai with the proxy as its base URL and the password as its key, nothing else."""
    options = types.HttpOptions(base_url=proxy.url, api_version=api_version)
    return genai.Client(api_key=PASSWORD, http_options=options)


def openai_client(proxy: ProxyServer, api_key: str = PASSWORD) -> openai.OpenAI:
    """OpenAI's SDK aimed at the proxy's OpenAI-compatible path; no retries of its own, so what
    the proxy answers is what the test sees."""
    return openai.OpenAI(api_key=api_key, base_url=proxy.url + OPENAI_PATH, max_retries=0)


def assert_gemini_saw_only_pool_keys(sim: str) -> list[dict]:
    """Every call reached Gemini with a pool key, the password nowhere in it; returns the calls."""
    calls = upstream_calls(sim)
    assert calls
    for call in calls:
        assert call["key"] in KEYS
        assert PASSWORD not in json.dumps(call)
    return calls


# --- google-genai, with its default API version and with v1beta ---


def test_genai_generate_goes_to_the_version_the_sdk_picks(
    sim: str, sdk: genai.Client, api_version: str | None
) -> None:
    """generate_content through the proxy: the answer, from the same API version upstream."""
    assert sdk.models.generate_content(model=MODEL, contents="hi there").text == ANSWER
    (call,) = assert_gemini_saw_only_pool_keys(sim)
    version = api_version or SDK_DEFAULT_VERSION
    assert call["path"] == f"/{version}/models/{MODEL}:generateContent"


def test_genai_stream_joins_into_the_answer(sim: str, sdk: genai.Client) -> None:
    chunks = list(sdk.models.generate_content_stream(model=MODEL, contents="hi"))
    assert "".join(chunk.text for chunk in chunks) == ANSWER
    (call,) = assert_gemini_saw_only_pool_keys(sim)
    assert call["query"] == "alt=sse"


def test_genai_counts_tokens(sim: str, sdk: genai.Client) -> None:
    assert sdk.models.count_tokens(model=MODEL, contents="one two three").total_tokens == 3
    assert_gemini_saw_only_pool_keys(sim)


def test_genai_lists_every_model_across_pages(sim: str, sdk: genai.Client) -> None:
    """list() follows nextPageToken through the proxy (pageSize and pageToken forwarded)."""
    models = list(sdk.models.list(config={"page_size": 2}))
    assert [model.name for model in models] == [f"models/{name}" for name in LISTED_MODELS]
    assert len(assert_gemini_saw_only_pool_keys(sim)) == -(-len(LISTED_MODELS) // 2)


def test_genai_embeds_each_text(sim: str, sdk: genai.Client) -> None:
    """embed_content (batchEmbedContents underneath) passes the proxy's body check."""
    embed_with_sdk(sdk)
    (call,) = assert_gemini_saw_only_pool_keys(sim)
    assert call["path"].endswith(f"/models/{EMBEDDING_MODEL}:batchEmbedContents")


def test_genai_function_call_comes_back(sim: str, sdk: genai.Client) -> None:
    configure(sim, {"default": {"parts_extra": [{"functionCall": {"name": "f", "args": {}}}]}})
    answer = sdk.models.generate_content(model=MODEL, contents="call f")
    assert [call.name for call in answer.function_calls] == ["f"]
    assert_gemini_saw_only_pool_keys(sim)


def test_langchain_with_its_defaults_gets_the_answer(proxy: ProxyServer, sim: str) -> None:
    """ChatGoogleGenerativeAI with only base_url and the password (API version v1)."""
    chat = ChatGoogleGenerativeAI(model=MODEL, google_api_key=PASSWORD, base_url=proxy.url)
    assert chat.invoke("hi there").text == ANSWER
    assert "".join(piece.text for piece in chat.stream("hi there")) == ANSWER
    calls = assert_gemini_saw_only_pool_keys(sim)
    assert all(call["path"].startswith(f"/v1/models/{MODEL}:") for call in calls)


# --- OpenAI's SDK on Gemini's OpenAI-compatible API ---


def test_openai_chat_completion(proxy: ProxyServer, sim: str) -> None:
    """The answer and its usage; the request is counted under route openai."""
    before = metric(proxy, "gemini_proxy_requests_total", route="openai", status="200")
    completion = openai_client(proxy).chat.completions.create(**CHAT)
    assert completion.choices[0].message.content == ANSWER
    assert completion.usage.prompt_tokens == 2
    (call,) = assert_gemini_saw_only_pool_keys(sim)
    assert (call["path"], call["model"]) == (f"{OPENAI_PATH}chat/completions", MODEL)
    after = metric(proxy, "gemini_proxy_requests_total", route="openai", status="200")
    assert after == before + 1


def test_openai_streamed_chat_completion(proxy: ProxyServer, sim: str) -> None:
    """stream=True: every chunk up to [DONE], the deltas join into the answer."""
    chunks = list(openai_client(proxy).chat.completions.create(**CHAT, stream=True))
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == ANSWER
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert_gemini_saw_only_pool_keys(sim)


def test_openai_models_list_and_retrieve(proxy: ProxyServer, sim: str) -> None:
    client = openai_client(proxy)
    assert [model.id for model in client.models.list()] == [f"models/{m}" for m in LISTED_MODELS]
    assert client.models.retrieve("gemini-2.5-pro").owned_by == "google"
    assert len(assert_gemini_saw_only_pool_keys(sim)) == 2


def test_openai_embeddings(proxy: ProxyServer, sim: str) -> None:
    embedded = openai_client(proxy).embeddings.create(
        model=EMBEDDING_MODEL, input=["a b", "c"], dimensions=4
    )
    assert [each.embedding for each in embedded.data] == [
        embedding_values("a b", 4),
        embedding_values("c", 4),
    ]
    assert_gemini_saw_only_pool_keys(sim)


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_openai_tool_call(proxy: ProxyServer, sim: str, streamed: bool) -> None:
    """With tools offered, the scripted functionCall is the SDK's tool call."""
    tool_call_with_sdk(openai_client(proxy), sim, streamed)
    assert_gemini_saw_only_pool_keys(sim)


def test_openai_wrong_key_is_an_authentication_error(proxy: ProxyServer, sim: str) -> None:
    """A wrong password: 401 in OpenAI's shape, which the SDK raises with the proxy's message;
    nothing reaches Gemini."""
    with pytest.raises(openai.AuthenticationError) as raised:
        openai_client(proxy, api_key="wrong").chat.completions.create(**CHAT)
    assert raised.value.status_code == 401
    assert "password" in raised.value.message
    assert raised.value.body["type"] == "authentication_error"
    assert upstream_calls(sim) == []


def test_openai_fails_over_past_a_key_out_of_quota(start_proxy, sim: str) -> None:
    """Gemini's list-wrapped 429 (RetryInfo, no Retry-After) on this path cools its key down
    for its retryDelay, and the next key answers; later requests skip the cooled key."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=f"{KEYS[0]},{KEYS[1]}")
    configure(sim, {"keys": {KEYS[0]: {"fault": "quota", "retry_delay": 30}}})
    client = openai_client(proxy)
    for streamed in (False, True, False, True):
        answer = client.chat.completions.create(**CHAT, stream=streamed)
        if streamed:
            assert "".join(c.choices[0].delta.content or "" for c in answer) == ANSWER
        else:
            assert answer.choices[0].message.content == ANSWER
    assert calls_per_key(sim) == {"k1": 1, "k2": 4}
    assert cooldowns(proxy) == {("k1", "quota"): 1}
    assert_gemini_saw_only_pool_keys(sim)


def test_openai_gemini_errors_come_back_as_gemini_sent_them(proxy: ProxyServer, sim: str) -> None:
    """A request Gemini refuses (its 400, not the key's fault): the SDK gets Gemini's own body,
    the one-element list, and no other key is tried."""
    configure(sim, {"default": {"status": 400}})
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client(proxy).chat.completions.create(**CHAT)
    assert isinstance(raised.value.body, list)
    assert raised.value.body[0]["error"]["code"] == 400
    assert len(assert_gemini_saw_only_pool_keys(sim)) == 1
