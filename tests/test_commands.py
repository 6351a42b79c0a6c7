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


@pytest.mark.skipif(not IN_A_VENV, reason="make demo is given the tests' virtualenv to run in")
def test_make_demo_stops_with_a_clear_line_when_the_simulator_cannot_start() -> None:
    """A taken SIM_PORT is reported, instead of a proxy whose every answer would be a 502."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        sim_port = taken.getsockname()[1]
        command = ["make", "-s", "demo", f"PORT={free_port()}", f"SIM_PORT={sim_port}"]
        result = subprocess.run(
            [*command, f"VENV={sys.prefix}"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert result.stdout.startswith(f"The Gemini simulator did not start on port {sim_port}")
    assert "Listening at" not in result.stdout, "the proxy must not start without its upstream"
