"""JavaScript clients as users run them, under Node: Google's @google/genai and the Vercel AI SDK
(ai + @ai-sdk/google), each given only the base URL its users give it and a key.

They run from tests/js (package.json and its committed lockfile; `npm ci` once per run into
tests/js/node_modules). Without `node` they are skipped, unless JS_CLIENT_TESTS_REQUIRE_NODE is
set (as .ci/run sets it), which turns the skip into a failure. Each runs against the simulator
directly (with a made-up key) and through the proxy (with the proxy's password, which Gemini must
never see).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from simulator import Behaviour
from tests.gemini_wire import answer_text
from tests.node import CLIENT_TIMEOUT, CLIENTS, JS_DIR
from tests.servers import KEYS, PASSWORD, ProxyServer, configure, control

pytestmark = pytest.mark.integration

MODES = ["generate", "stream"]
SIM_KEY = "js-key"


def base_url(client: str, host: str) -> str:
    """The base URL a user of `client` configures to reach Gemini (or the proxy) at `host`."""
    return CLIENTS[client][0](host)


def run_client(client: str, mode: str, host: str, key: str) -> list[dict[str, Any]]:
    """Run tests/js/<client>.mjs in a mode against `host`; return its JSON lines (an "error"
    line and a non-zero exit fail the test with the client's output)."""
    result = subprocess.run(
        ["node", f"{client}.mjs", mode, base_url(client, host), key],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
    )
    assert result.returncode == 0, f"{client} {mode} failed:\n{result.stdout}{result.stderr}"
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(params=["simulator", "proxy"])
def target(request: pytest.FixtureRequest, sim: str) -> tuple[str, str]:
    """Where a client is pointed, and the key it is given: the simulator with a made-up key, or
    the proxy (in front of that simulator) with the proxy's password."""
    if request.param == "simulator":
        return sim, SIM_KEY
    proxy: ProxyServer = request.getfixturevalue("proxy")
    return proxy.url, PASSWORD


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client", list(CLIENTS))
def test_js_client_gets_the_whole_answer(
    js_clients: Path, sim: str, target: tuple[str, str], client: str, mode: str
) -> None:
    """generate and stream: the answer's text, STOP, on the API version the client picks itself
    (streams with alt=sse); Gemini sees the client's key, or through the proxy a pool key."""
    host, key = target
    lines = run_client(client, mode, host, key)
    *chunks, result = lines
    answer = answer_text(Behaviour(events=3))
    assert result["event"] == "result"
    assert result["text"] == answer
    assert result["finishReason"].lower() == "stop"
    if mode == "stream":
        assert len(chunks) == 3
        assert "".join(chunk["text"] for chunk in chunks) == answer
    (logged,) = control(sim, "requests")["requests"]
    method = "streamGenerateContent" if mode == "stream" else "generateContent"
    version = CLIENTS[client][1]
    assert logged["path"] == f"/{version}/models/gemini-2.5-flash:{method}"
    assert logged["key"] in (KEYS if key == PASSWORD else [SIM_KEY])
    assert PASSWORD not in json.dumps(logged)
    assert logged["query"] == ("alt=sse" if mode == "stream" else "")


@pytest.mark.parametrize("client", list(CLIENTS))
def test_js_client_reports_a_quota_fault_as_an_error_line(
    js_clients: Path, sim: str, client: str
) -> None:
    """A key out of quota: the client's error (Gemini's status and message), as one JSON line
    and exit code 1."""
    configure(sim, {"keys": {SIM_KEY: {"fault": "quota"}}})
    result = subprocess.run(
        ["node", f"{client}.mjs", "generate", base_url(client, sim), SIM_KEY],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
    )
    (line,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1
    assert line["event"] == "error"
    assert line["status"] == 429
    assert "You exceeded your current quota" in line["message"]
