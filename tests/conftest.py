"""Shared fixtures: the app on a fake Gemini (as flaskr's tests have), and for integration tests
the simulator process and gunicorn proxies in front of it, on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.client import clear_upstream_calls
from tests.fakes import EVENT, FakeGemini, app_with
from tests.node import install_js_clients
from tests.redis_server import RedisServer
from tests.servers import (
    KEYS,
    PASSWORD,
    SHUTDOWN_TIMEOUT,
    ProxyServer,
    configure,
    control,
    start_simulator,
    wait_for,
)


@pytest.fixture
def gemini() -> FakeGemini:
    """The fake Gemini the `app` fixture calls: one complete answer, until a test says otherwise
    (`gemini.handler = ...`)."""
    return FakeGemini(lambda call: [EVENT])


@pytest.fixture
def app(gemini: FakeGemini) -> Flask:
    """The real app, wired to the `gemini` fixture instead of Gemini."""
    return app_with(gemini)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the `app` fixture."""
    return app.test_client()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of the test's own, on a Unix socket in its temporary folder."""
    server = RedisServer.start(tmp_path)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    """One simulator process for the whole run: 3 events, no delay, unless a test configures it."""
    process, url = start_simulator("--events", "3", "--delay", "0")
    yield url
    process.terminate()
    process.wait(SHUTDOWN_TIMEOUT)


@pytest.fixture
def sim(simulator_url: str) -> str:
    """The simulator reset to its start-up behaviour, with an empty request log."""
    configure(simulator_url, {}).raise_for_status()
    clear_upstream_calls(simulator_url)
    wait_for(lambda: control(simulator_url, "streams")["open"] == 0)
    return simulator_url


def proxy_environ(simulator_url: str, **overrides: str) -> dict[str, str]:
    """The proxy's environment for tests: three fake keys, a random password, the simulator."""
    return {
        "GEMINI_API_KEY_LIST": ",".join(KEYS),
        "api_password": PASSWORD,
        "GEMINI_API_BASE": simulator_url,
        **overrides,
    }


@pytest.fixture(scope="session")
def proxy(simulator_url: str) -> Iterator[ProxyServer]:
    """The real gunicorn, 2 gevent workers, in front of the simulator.

    gunicorn's access line is on, so the secrets test at the end reads it too.
    """
    server = ProxyServer(proxy_environ(simulator_url, ACCESS_LOG="1")).wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def own_proxy(simulator_url: str) -> Iterator[ProxyServer]:
    """A proxy of the test module's own, so the key penalties its tests cause stay there."""
    server = ProxyServer(proxy_environ(simulator_url)).wait_ready()
    yield server
    stop_and_check(server)


@pytest.fixture
def start_proxy(simulator_url: str) -> Iterator:
    """Start extra proxies with other settings; each is stopped after the test."""
    started: list[ProxyServer] = []

    def start(wait: bool = True, workers: int = 2, **overrides: str) -> ProxyServer:
        server = ProxyServer(proxy_environ(simulator_url, **overrides), workers=workers)
        started.append(server)
        return server.wait_ready() if wait else server

    yield start
    for server in started:
        stop_and_check(server)


def stop_and_check(server: ProxyServer) -> None:
    """Stop a proxy a test started; whatever it was made to do, no secret is in what it wrote."""
    server.stop()
    output = server.output()
    assert not any(secret in output for secret in (*KEYS, PASSWORD)), "a secret was logged"


@pytest.fixture(scope="session")
def js_clients() -> Path:
    """tests/js with its locked dependencies installed, for tests run by Node; skipped (or
    failed, where JS_CLIENT_TESTS_REQUIRE_NODE is set) without Node."""
    return install_js_clients()
