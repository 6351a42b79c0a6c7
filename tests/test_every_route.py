"""What holds on every route alike: the one password rule (five places, none forwarded), the
404 that names what is served, and the OpenAI-shaped errors the proxy makes on
/v1beta/openai/ (Gemini-shaped everywhere else). Over real sockets, the real gunicorn."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.client import PROMPT, assert_json_error, upstream_calls
from tests.servers import KEYS, PASSWORD, REQUEST_TIMEOUT, ProxyServer, configure

pytestmark = pytest.mark.integration

MODEL = "gemini-2.5-flash"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
OPENAI = "/v1beta/openai"
# Each served route by name: method, path and body of a request the simulator answers.
ROUTES: dict[str, tuple[str, str, Any]] = {
    "generate": ("POST", "/generate", PROMPT),
    "native-v1beta": ("POST", f"/v1beta/models/{MODEL}:generateContent", PROMPT),
    "native-v1": ("POST", f"/v1/models/{MODEL}:generateContent", PROMPT),
    "native-v1-models": ("GET", "/v1/models", None),
    "openai-chat": ("POST", f"{OPENAI}/chat/completions", CHAT),
    "openai-models": ("GET", f"{OPENAI}/models", None),
}
# Where a client may put the password: (headers, query), given the password.
PLACES = {
    "bearer": lambda pw: ({"Authorization": f"Bearer {pw}"}, {}),
    "x-api-key": lambda pw: ({"x-api-key": pw}, {}),
    "x-goog-api-key": lambda pw: ({"x-goog-api-key": pw}, {}),
    "query-password": lambda pw: ({}, {"password": pw}),
    "query-key": lambda pw: ({}, {"key": pw}),
}
SERVED = ["/generate", "/v1beta/...", "/v1/...", "/v1beta/openai/..."]
# Bodies over the proxy's limit (20 MB, as Gemini's inline requests) get 413 before they are read.
TOO_LARGE = 20 * 1024 * 1024 + 1


@pytest.fixture
def proxy(own_proxy: ProxyServer) -> ProxyServer:
    """This module's own proxy, so key penalties here stay here."""
    return own_proxy


def call(
    proxy: ProxyServer,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    data: bytes | None = None,
) -> requests.Response:
    """One request to the proxy on a fresh connection."""
    if data is None and body is not None:
        data = json.dumps(body).encode()
    return requests.request(
        method,
        proxy.url + path,
        data=data,
        headers={"Content-Type": "application/json", "Connection": "close", **(headers or {})},
        params=params,
        timeout=REQUEST_TIMEOUT,
    )


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("route", list(ROUTES))
def test_every_password_place_works_on_every_route_and_is_never_forwarded(
    proxy: ProxyServer, sim: str, route: str, place: str
) -> None:
    method, path, body = ROUTES[route]
    headers, params = PLACES[place](PASSWORD)
    response = call(proxy, method, path, body, headers, params)
    assert response.status_code == 200, response.text
    (upstream,) = upstream_calls(sim)
    assert upstream["key"] in KEYS
    assert PASSWORD not in json.dumps(upstream)
    assert "key=" not in upstream["query"] and "password=" not in upstream["query"]


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("route", list(ROUTES))
def test_a_wrong_password_in_any_place_is_refused_on_every_route(
    proxy: ProxyServer, sim: str, route: str, place: str
) -> None:
    method, path, body = ROUTES[route]
    headers, params = PLACES[place](PASSWORD + "x")
    response = call(proxy, method, path, body, headers, params)
    assert response.status_code == 401
    assert "password" in response.json()["error"]["message"]
    assert upstream_calls(sim) == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("POST", "/chat/completions"),
        ("GET", "/v1beta/nothing"),
        ("POST", "/v2/models/gemini-2.5-flash:generateContent"),
        ("GET", "/v1/openai/models"),
    ],
    ids=[
        "root",
        "openai-path-without-prefix",
        "unknown-v1beta-path",
        "unknown-version",
        "v1-openai",
    ],
)
def test_an_unknown_path_is_told_the_served_prefixes(
    proxy: ProxyServer, sim: str, method: str, path: str
) -> None:
    error = assert_json_error(call(proxy, method, path), 404)
    assert error["served"] == SERVED
    assert all(prefix.rstrip(".") in error["message"] for prefix in ("/generate", "/v1/"))
    assert upstream_calls(sim) == []


def assert_openai_error(response: requests.Response, code: int, kind: str) -> dict[str, Any]:
    """`code` with OpenAI's error shape, as OpenAI SDKs read it; returns the `error` object."""
    assert response.status_code == code, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["message"] and error["code"]
    assert error["type"] == kind
    return error


AUTH = {"Authorization": f"Bearer {PASSWORD}"}
BAD_REQUEST = "invalid_request_error"


@pytest.mark.parametrize(
    ("method", "path", "data", "headers", "code", "kind"),
    [
        ("POST", "/chat/completions", json.dumps(CHAT), {}, 401, "authentication_error"),
        ("GET", "/models", None, {"Authorization": "Bearer wrong"}, 401, "authentication_error"),
        ("POST", "/chat/completions", "{not json", AUTH, 400, BAD_REQUEST),
        ("POST", "/chat/completions", b"\xff\xfe", AUTH, 400, BAD_REQUEST),
        ("POST", "/chat/completions", "[1, 2]", AUTH, 400, BAD_REQUEST),
        ("POST", "/chat/completions", '{"messages": [{"role": "user"}]}', AUTH, 400, BAD_REQUEST),
        ("POST", "/chat/completions", '{"model": 7, "messages": [{}]}', AUTH, 400, BAD_REQUEST),
        (
            "POST",
            "/chat/completions",
            '{"model": "bad..name", "messages": [{}]}',
            AUTH,
            400,
            BAD_REQUEST,
        ),
        ("POST", "/chat/completions", f'{{"model": "{MODEL}"}}', AUTH, 400, BAD_REQUEST),
        (
            "POST",
            "/chat/completions",
            f'{{"model": "{MODEL}", "messages": []}}',
            AUTH,
            400,
            BAD_REQUEST,
        ),
        ("POST", "/embeddings", f'{{"model": "{MODEL}"}}', AUTH, 400, BAD_REQUEST),
        ("POST", "/embeddings", f'{{"model": "{MODEL}", "input": []}}', AUTH, 400, BAD_REQUEST),
        ("GET", "/models/bad..name", None, AUTH, 400, BAD_REQUEST),
        ("POST", "/completions", json.dumps(CHAT), AUTH, 404, BAD_REQUEST),
        ("GET", "/chat/completions", None, AUTH, 405, BAD_REQUEST),
        ("POST", "/chat/completions", b"x" * TOO_LARGE, AUTH, 413, BAD_REQUEST),
    ],
    ids=[
        "no-password",
        "wrong-bearer",
        "not-json",
        "not-utf8",
        "not-an-object",
        "no-model",
        "model-not-a-string",
        "unsafe-model-name",
        "chat-without-messages",
        "chat-with-empty-messages",
        "embeddings-without-input",
        "embeddings-with-empty-input",
        "unsafe-model-in-path",
        "unknown-endpoint",
        "wrong-method",
        "body-too-large",
    ],
)
def test_the_proxys_own_errors_on_the_openai_path_are_openai_shaped(
    proxy: ProxyServer,
    sim: str,
    method: str,
    path: str,
    data: str | bytes | None,
    headers: dict[str, str],
    code: int,
    kind: str,
) -> None:
    """And none of those requests reaches Gemini."""
    raw = data.encode() if isinstance(data, str) else data
    assert_openai_error(call(proxy, method, OPENAI + path, data=raw, headers=headers), code, kind)
    assert upstream_calls(sim) == []


def test_no_usable_key_on_the_openai_path_is_an_openai_shaped_429(start_proxy, sim: str) -> None:
    """Every key out of quota: the proxy's own 429, OpenAI-shaped, with Retry-After."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=KEYS[0])
    configure(sim, {"keys": {KEYS[0]: {"fault": "quota", "retry_delay": 30}}})
    first = call(proxy, "POST", f"{OPENAI}/chat/completions", CHAT, AUTH)
    assert first.status_code == 429 and isinstance(first.json(), list)  # Gemini's own
    second = call(proxy, "POST", f"{OPENAI}/chat/completions", CHAT, AUTH)
    error = assert_openai_error(second, 429, "rate_limit_error")
    assert "quota" in error["message"]
    assert int(second.headers["Retry-After"]) > 0
    assert len(upstream_calls(sim)) == 1


def test_a_refused_pool_key_on_the_openai_path_is_an_openai_shaped_500(
    start_proxy, sim: str
) -> None:
    """Gemini refusing the proxy's own key is the operator's fault: a 500 naming the key by id
    only, in OpenAI's shape."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=KEYS[0])
    configure(sim, {"keys": {KEYS[0]: {"fault": "invalid_key"}}})
    response = call(proxy, "POST", f"{OPENAI}/chat/completions", CHAT, AUTH)
    error = assert_openai_error(response, 500, "server_error")
    assert "k1" in error["message"] and KEYS[0] not in response.text
