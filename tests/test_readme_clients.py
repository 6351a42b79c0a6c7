"""The README's Clients section as its readers run it: every snippet against a live proxy (the
real gunicorn in front of the simulator), so a snippet and the proxy cannot drift apart.

The snippets read PROXY_URL and PROXY_PASSWORD (defaulting to make demo's proxy); curl and shell
lines use make demo's URL and password literally, swapped for the test proxy's here. LiteLLM is
not installed: its URL is built the way LiteLLM builds it, from the snippet's api_base.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from simulator import Behaviour
from tests.client import upstream_calls
from tests.gemini_wire import answer_text
from tests.node import CLIENT_TIMEOUT, CLIENTS, JS_DIR
from tests.servers import KEYS, PASSWORD, REPO_ROOT, REQUEST_TIMEOUT, ProxyServer

pytestmark = pytest.mark.integration

README = (REPO_ROOT / "README.md").read_text()
SECTION = README.split("\n## Clients\n", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```$", SECTION, re.MULTILINE | re.DOTALL)
DEMO_URL = "http://localhost:1231"
DEMO_PASSWORD = "kkb"
ANSWER = answer_text(Behaviour(events=3))
# Not a test dependency: its snippet is checked by the URL it makes, not run.
NOT_INSTALLED = "litellm"
# LiteLLM's URL for a Gemini model under a custom api_base (litellm's vertex_llm_base.py).
LITELLM_URL = "{api_base}/models/{model}:generateContent"


def blocks(language: str) -> list[str]:
    return [code for kind, code in BLOCKS if kind == language]


def imports(code: str) -> set[str]:
    tree = ast.parse(code)
    return {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }


PYTHON = [code for code in blocks("python") if NOT_INSTALLED not in imports(code)]
(LITELLM,) = [code for code in blocks("python") if NOT_INSTALLED in imports(code)]


@pytest.fixture
def proxy(own_proxy: ProxyServer) -> ProxyServer:
    return own_proxy


@pytest.fixture
def proxy_env(proxy: ProxyServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """PROXY_URL and PROXY_PASSWORD set to the test proxy's, as a reader sets them."""
    monkeypatch.setenv("PROXY_URL", proxy.url)
    monkeypatch.setenv("PROXY_PASSWORD", PASSWORD)
    return {"PROXY_URL": proxy.url, "PROXY_PASSWORD": PASSWORD}


def assert_gemini_saw_only_pool_keys(sim: str) -> None:
    calls = upstream_calls(sim)
    assert calls
    for call in calls:
        assert call["key"] in KEYS
        assert PASSWORD not in json.dumps(call)


def test_the_section_has_a_snippet_for_every_client() -> None:
    """curl, google-genai, LangChain, openai, LiteLLM, @google/genai, Vercel AI, Gemini CLI."""
    modules = set().union(*(imports(code) for code in blocks("python")))
    assert {"google", "langchain_google_genai", "openai", "litellm"} <= modules
    js = "\n".join(blocks("js"))
    assert '"@google/genai"' in js and '"@ai-sdk/google"' in js
    shell = "\n".join(blocks("sh"))
    assert "curl " in shell and "GOOGLE_GEMINI_BASE_URL=" in shell
    (settings,) = blocks("json")
    assert json.loads(settings)["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert "trustedFolders.json" in SECTION


@pytest.mark.parametrize("code", PYTHON, ids=lambda code: sorted(imports(code) - {"os"})[0])
def test_a_python_snippet_runs_through_the_proxy(
    sim: str, proxy_env: dict[str, str], capsys: pytest.CaptureFixture[str], code: str
) -> None:
    exec(compile(code, "README.md", "exec"), {})
    assert ANSWER in capsys.readouterr().out
    assert_gemini_saw_only_pool_keys(sim)


def test_the_litellm_snippets_api_base_reaches_gemini_through_the_proxy(
    proxy: ProxyServer, sim: str
) -> None:
    """LiteLLM appends /models/{model}:... to api_base and sends x-goog-api-key."""
    (base,) = re.findall(r'api_base=os\.environ\.get\("PROXY_URL", "[^"]+"\) \+ "([^"]*)"', LITELLM)
    (model,) = re.findall(r'model="gemini/([^"]+)"', LITELLM)
    url = LITELLM_URL.format(api_base=proxy.url + base, model=model)
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    response = requests.post(
        url, json=body, headers={"x-goog-api-key": PASSWORD}, timeout=REQUEST_TIMEOUT
    )
    assert response.status_code == 200, response.text
    assert_gemini_saw_only_pool_keys(sim)


@pytest.mark.parametrize("index", range(len(blocks("js"))))
def test_a_javascript_snippet_runs_through_the_proxy(
    js_clients: Path, sim: str, proxy_env: dict[str, str], index: int
) -> None:
    """Run by Node from tests/js, where its packages are installed."""
    script = JS_DIR / f"readme-snippet-{index}.mjs"
    script.write_text(blocks("js")[index])
    try:
        result = subprocess.run(
            ["node", script.name],
            cwd=JS_DIR,
            env={"PATH": os.environ["PATH"], **proxy_env},
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT,
        )
    finally:
        script.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    assert ANSWER in result.stdout
    assert_gemini_saw_only_pool_keys(sim)


def test_the_javascript_snippets_use_the_base_urls_the_client_tests_use() -> None:
    """@google/genai takes the host, the Vercel provider host + /v1beta (tests/test_js_clients)."""
    google_genai, vercel = blocks("js")
    assert CLIENTS["google-genai"][0]("HOST") == "HOST"
    assert 'baseUrl: process.env.PROXY_URL ?? "http://localhost:1231"' in google_genai
    assert CLIENTS["vercel-ai"][0]("HOST") == "HOST/v1beta"
    assert '"http://localhost:1231"}/v1beta`' in vercel


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not found")
def test_the_curl_lines_work_through_the_proxy(proxy: ProxyServer, sim: str) -> None:
    (curl,) = [code for code in blocks("sh") if "curl " in code]
    script = curl.replace(DEMO_URL, proxy.url).replace(DEMO_PASSWORD, PASSWORD)
    result = subprocess.run(
        ["sh", "-ec", script.replace("curl ", "curl -sSf ")],
        capture_output=True,
        text=True,
        timeout=REQUEST_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(ANSWER) == 2
    assert_gemini_saw_only_pool_keys(sim)


def test_the_gemini_cli_base_url_is_the_host() -> None:
    """Gemini CLI builds on @google/genai: its base URL is the host, as that client's."""
    (cli,) = [code for code in blocks("sh") if "GOOGLE_GEMINI_BASE_URL" in code]
    assert f"GOOGLE_GEMINI_BASE_URL={DEMO_URL}\n" in cli
    assert f"GEMINI_API_KEY={DEMO_PASSWORD}\n" in cli
