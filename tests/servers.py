"""Real processes on loopback for the tests: the Gemini simulator and gunicorn serving the proxy.

Usage::

    process, sim_url = start_simulator("--delay", "0")
    proxy = ProxyServer({"GEMINI_API_KEY_LIST": "a,b", "GEMINI_API_BASE": sim_url})
    ...
    proxy.stop()
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

KEY_ALPHABET = string.ascii_letters + string.digits + "_-"


def fake_gemini_key() -> str:
    """A key shaped like Google's ("AIza" + 35), made at run time so none is ever committed."""
    return "AIza" + "".join(secrets.choice(KEY_ALPHABET) for _ in range(35))


# The secrets every proxy in the tests runs with, random per run; no output may ever hold them.
KEYS = [fake_gemini_key() for _ in range(3)]
PASSWORD = "pw-" + secrets.token_urlsafe(12)
REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 20.0
SHUTDOWN_TIMEOUT = 10.0
POLL_TIMEOUT = 5.0
POLL_INTERVAL = 0.01
REQUEST_TIMEOUT = 5.0


def wait_for(condition: Callable[[], bool], timeout: float = POLL_TIMEOUT) -> None:
    """Poll until the condition holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(POLL_INTERVAL)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    """Whether a GET of the URL answers 200 now (False while nothing listens there)."""
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def start_simulator(*options: str) -> tuple[subprocess.Popen[str], str]:
    """Start `python -m simulator --port 0` and return it with its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", "0", *options],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT)
    line = process.stdout.readline() if ready else ""
    if not line:
        process.kill()
        raise RuntimeError("the simulator did not announce its port")
    announcement = json.loads(line)
    assert announcement["event"] == "simulator_listening"
    return process, f"http://{announcement['host']}:{announcement['port']}"


def configure(base_url: str, config: dict[str, Any]) -> requests.Response:
    """PUT a behaviour configuration on the simulator."""
    return requests.put(f"{base_url}/_sim/behaviour", json=config, timeout=REQUEST_TIMEOUT)


def control(base_url: str, name: str) -> dict[str, Any]:
    """GET one of the simulator's control endpoints as JSON."""
    response = requests.get(f"{base_url}/_sim/{name}", timeout=REQUEST_TIMEOUT)
    response.raise_for_status()
    return response.json()


class ProxyServer:
    """`gunicorn -c gunicorn.conf.py wsgi:app` with gevent workers on a free loopback port.

    `app` serves another WSGI app under the same settings (the benchmark's floor); `python` is
    the interpreter whose gunicorn runs it (another virtualenv's, to test what that one holds).
    """

    def __init__(
        self,
        environ: Mapping[str, str],
        workers: int = 2,
        app: str = "wsgi:app",
        python: str = sys.executable,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._workdir = tempfile.TemporaryDirectory(prefix="gemini-proxy-test-")
        self._log_path = Path(self._workdir.name, "proxy.log")
        metrics_dir = Path(self._workdir.name, "metrics")
        # The log file must outlive this method: gunicorn writes to it until stop().
        self._log = self._log_path.open("wb")
        self._captured: str | None = None
        env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "WEB_CONCURRENCY": str(workers),
            **environ,
        }
        command = [python, "-m", "gunicorn", "-c", "gunicorn.conf.py", app]
        self.process = subprocess.Popen(
            [*command, "-b", f"127.0.0.1:{self.port}"],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> ProxyServer:
        """Block until both the socket answers and every worker has booted."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.output()}")
            try:
                requests.get(f"{self.url}/health", timeout=REQUEST_TIMEOUT).raise_for_status()
                return self
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError(f"gunicorn did not come up:\n{self.output()}")

    def output(self) -> str:
        """Everything gunicorn, its workers and the app wrote so far (stdout and stderr)."""
        if self._captured is not None:
            return self._captured
        return self._log_path.read_text(errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far; a line that is not JSON fails the test."""
        text = self.output()
        # While gunicorn runs, its last line may be half written: read whole lines only.
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def stop(self, timeout: float = SHUTDOWN_TIMEOUT) -> int:
        """SIGTERM gunicorn and wait for it; return its exit code. Safe to call twice."""
        if self._captured is not None:
            return self.process.returncode
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        self._captured = self._log_path.read_text(errors="replace")
        self._workdir.cleanup()
        return code
