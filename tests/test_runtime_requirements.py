"""requirements.txt alone runs the server: a virtualenv of the runtime pins and nothing else.

The test suite's own virtualenv cannot show a missing runtime package, since the dev requirements
bring their own dependencies (pytest brings `packaging`, which gunicorn's gevent worker imports
but gunicorn declares only in its `gevent` extra). This virtualenv is built from requirements.txt
and constraints.txt only, as the Dockerfile installs them, and runs the real gunicorn.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client import generate
from tests.conftest import proxy_environ, stop_and_check
from tests.packages import DEV_ONLY, RUNTIME, normalized
from tests.servers import REPO_ROOT, ProxyServer

pytestmark = pytest.mark.integration

# pip reads from its cache when it can; a cold one downloads some 10 MB.
INSTALL_TIMEOUT = 300.0
LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m, json; "
    "print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"
)


@pytest.fixture(scope="module")
def runtime_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh virtualenv holding requirements.txt under constraints.txt."""
    venv = tmp_path_factory.mktemp("runtime-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check"]
    result = subprocess.run(
        [*pip, "install", "--quiet", "-r", "requirements.txt", "-c", "constraints.txt"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return python


def test_the_runtime_virtualenv_holds_the_runtime_pins_and_no_dev_tool(
    runtime_python: Path,
) -> None:
    """Every runtime pin is installed; no test or lint tool is, so none can stand in for a
    runtime package the pins forgot."""
    listed = subprocess.run(
        [runtime_python, "-c", LIST_DISTRIBUTIONS], capture_output=True, text=True, check=True
    )
    installed = {normalized(name) for name in json.loads(listed.stdout)}
    assert installed >= RUNTIME
    assert not installed & DEV_ONLY, installed & DEV_ONLY


def test_the_runtime_requirements_alone_serve_a_stream_with_gevent_workers(
    runtime_python: Path, simulator_url: str
) -> None:
    """gunicorn with its gevent workers, from the runtime virtualenv, starts, answers /health
    and streams a generation from the simulator."""
    server = ProxyServer(proxy_environ(simulator_url), workers=1, python=str(runtime_python))
    try:
        server.wait_ready()
        response = generate(server)
        assert response.status_code == 200, response.text
        chunks = response.json()
        assert chunks[-1]["is_complete"] is True and chunks[-1]["finish_reason"] == "STOP"
        assert any(line.get("logger") == "gunicorn.error" for line in server.log_lines())
    finally:
        stop_and_check(server)
