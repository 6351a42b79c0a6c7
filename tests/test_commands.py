"""The README's commands as a person runs them: `make run` without keys, `make demo`, its curl."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from tests.servers import REPO_ROOT, STARTUP_TIMEOUT, free_port, wait_for

pytestmark = pytest.mark.integration

README = (REPO_ROOT / "README.md").read_text()
IN_A_VENV = sys.prefix != sys.base_prefix


def test_make_run_without_keys_says_so_in_one_line_pointing_at_the_demo() -> None:
    """No GEMINI_API_KEY_LIST: exit non-zero at once with one line that names `make demo`."""
    env = {k: v for k, v in os.environ.items() if k != "GEMINI_API_KEY_LIST"}
    result = subprocess.run(
        ["make", "-s", "run"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1
    assert "GEMINI_API_KEY_LIST" in lines[0] and "make demo" in lines[0]


@pytest.fixture
def demo() -> Iterator[tuple[int, list[str]]]:
    """`make demo` on free ports, using the virtualenv that runs these tests."""
    port, sim_port = free_port(), free_port()
    command = ["make", "-s", "demo", f"PORT={port}", f"SIM_PORT={sim_port}", f"VENV={sys.prefix}"]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    printed: list[str] = []
    try:
        while not any(line.startswith("    -d ") for line in printed):
            line = process.stdout.readline()
            assert line, f"make demo ended early: {printed}"
            printed.append(line.rstrip("\n"))
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/health"), timeout=STARTUP_TIMEOUT)
        yield port, printed
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


@pytest.mark.skipif(not IN_A_VENV, reason="make demo is given the tests' virtualenv to run in")
def test_make_demo_serves_the_curl_it_prints_and_the_readme_shows(
    demo: tuple[int, list[str]],
) -> None:
    """The printed curl is the README's (but for the port) and answers with streamed chunks."""
    port, printed = demo
    start = next(i for i, line in enumerate(printed) if line.lstrip().startswith("curl "))
    curl_lines = printed[start:]
    readme_curl = "\n".join(line.strip() for line in curl_lines).replace(str(port), "1231")
    readme_block = "\n".join(line.strip() for line in README.splitlines())
    assert readme_curl in readme_block

    result = subprocess.run(
        ["bash", "-c", "\n".join(curl_lines)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert len(body) >= 3
    assert [chunk["chunk_number"] for chunk in body] == list(range(1, len(body) + 1))
    assert body[-1]["is_complete"] is True and body[-1]["finish_reason"] == "STOP"


@pytest.mark.parametrize(
    ("variable", "other", "who"),
    [("SIM_PORT", "PORT", "the Gemini simulator"), ("PORT", "SIM_PORT", "the proxy")],
)
def test_make_demo_stops_at_once_with_one_line_when_a_port_is_taken(
    variable: str, other: str, who: str
) -> None:
    """A taken SIM_PORT or PORT: one line naming the port and the variable to change, before
    any virtualenv is built or anything starts (no traceback, no curl, no proxy)."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(
            ["make", "-s", "demo", f"{variable}={port}", f"{other}={free_port()}"],
            cwd=REPO_ROOT,
            env={**os.environ, "VENV": "/nonexistent/demo-venv"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode != 0
    assert len(lines) == 1, lines
    assert f"Port {port} ({variable}, {who}) is in use" in lines[0]
    assert f"make demo {variable}={port + 1}" in lines[0]


def test_building_the_virtualenv_says_it_happens_once_and_takes_about_a_minute() -> None:
    """A newcomer's first `make demo` builds the virtualenv first, and says so."""
    command = ["make", "-n", "demo", "VENV=/nonexistent/demo-venv"]
    ports = [f"PORT={free_port()}", f"SIM_PORT={free_port()}"]
    result = subprocess.run(
        [*command, *ports], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    (said,) = [line for line in result.stdout.splitlines() if "Building the virtualenv" in line]
    assert "first run only, about a minute" in said
    assert result.stdout.index(said) < result.stdout.index("-m venv /nonexistent/demo-venv")
