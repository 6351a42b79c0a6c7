"""The image, built from the checkout and run by a real engine (buildah, podman, runc) as
deploy/docker-compose.yml runs it: read-only, /tmp on a tmpfs, the secrets as files.

Everything stays on 127.0.0.1: the containers share the host's network, the proxy bound to
loopback (GUNICORN_CMD_ARGS, which the image's CMD honours) on a free port. `.ci/run` installs
podman, buildah, runc and debootstrap and sets CONTAINER_TESTS_REQUIRE_ENGINE=1, so a missing
one fails the run there; elsewhere these tests skip, saying what to install. They need root.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.client import generate
from tests.packages import DEV_ONLY, RUNTIME, normalized
from tests.podman import CA_BUNDLE, Container, Engine, base_images, missing_programs
from tests.servers import (
    KEYS,
    PASSWORD,
    REPO_ROOT,
    REQUEST_TIMEOUT,
    STARTUP_TIMEOUT,
    answers,
    configure,
    control,
    free_port,
    wait_for,
)

pytestmark = pytest.mark.integration

REQUIRED = os.environ.get("CONTAINER_TESTS_REQUIRE_ENGINE") == "1"
# A tag of this run's own: runs from other checkouts may build beside it (the layers are shared).
IMAGE = f"localhost/gemini-chunk-proxy:test-{os.getpid()}"
# The simulator's module, run from the same image (the one place to change should it move).
SIMULATOR_MODULE = "simulator"
RUNTIME_UID = 10001
# What the image's working directory may hold: what the Dockerfile's COPY lines name (the server
# and the pins it was installed from), by top-level name.
DOCKERFILE = REPO_ROOT / "Dockerfile"
COPIED = re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", DOCKERFILE.read_text(), re.MULTILINE)
SERVER_FILES = {source.split("/")[0] for line in COPIED for source in line.split()}
COMPOSE = yaml.safe_load((REPO_ROOT / "deploy" / "docker-compose.yml").read_text())
# The proxy's service, whose options the tests run the image with.
COMPOSE_PROXY = COMPOSE["services"]["proxy"]
# What the test puts in each of the compose file's secrets, by secret name.
SECRET_VALUES = {"gemini_api_keys": "\n".join(KEYS) + "\n", "api_password": PASSWORD + "\n"}
SECRETS_DIR = "/run/secrets"
# A stream of 3 s from the simulator: time enough to signal the proxy in its middle.
STREAM_EVENTS, STREAM_DELAY = 12, 0.25
STOP_TIMEOUT = 60.0

# Run inside the image by the last test: what the image holds.
IMAGE_FACTS = REPO_ROOT / "tests" / "image_facts.py"


def announce(request: pytest.FixtureRequest, line: str) -> None:
    """Print a line in the test run's output (the image's size and build time, for the record)."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{line}", flush=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The engine, with the base images the Dockerfile names (made once, kept in the store)."""
    problem = None
    if missing := missing_programs():
        problem = f"{', '.join(missing)} not installed (Debian's packages of the same names)"
    elif os.geteuid() != 0:
        problem = "the container tests run the engine as root"
    if problem:
        if REQUIRED:
            pytest.fail(f"{problem}; CONTAINER_TESTS_REQUIRE_ENGINE=1 requires them")
        pytest.skip(problem)
    engine = Engine(tmp_path_factory.mktemp("podman"))
    started = time.monotonic()
    made = engine.ensure_base_images()
    if made:
        announce(request, f"made {', '.join(made)} in {time.monotonic() - started:.0f} s")
    return engine


@pytest.fixture(scope="module")
def image(request: pytest.FixtureRequest, engine: Engine) -> Iterator[str]:
    """The image built from the checkout (cached layers reused, as Docker does); untagged after
    the tests, its layers kept as the next build's cache."""
    seconds = engine.build(IMAGE)
    megabytes = engine.image_size(IMAGE) / 1e6
    announce(request, f"{IMAGE}: built in {seconds:.1f} s, {megabytes:.0f} MB")
    yield IMAGE
    engine("podman", "untag", IMAGE, IMAGE)


@pytest.fixture(scope="module")
def simulator(engine: Engine, image: str) -> Iterator[str]:
    """The Gemini simulator, run from the image itself, read-only like the proxy."""
    port = free_port()
    container = engine.run(
        image,
        "--read-only",
        command=[
            *("python", "-m", SIMULATOR_MODULE, "--host", "127.0.0.1", "--port", str(port)),
            *("--events", str(STREAM_EVENTS), "--delay", str(STREAM_DELAY)),
        ],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{url}/_sim/health"), timeout=STARTUP_TIMEOUT)
        yield url
    finally:
        container.remove()


class Proxy:
    """The image's server in a container, on a free loopback port."""

    def __init__(self, container: Container, port: int) -> None:
        self.container = container
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture
def start_proxy(
    engine: Engine, image: str, simulator: str, tmp_path: Path
) -> Iterator[Callable[..., Proxy]]:
    """Start the image's server with deploy/docker-compose.yml's options for the proxy: its
    environment (secrets as files), read-only root and tmpfs; secrets mounted where compose
    mounts them. Extra `podman run` options may be added. Every container is removed after."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    mounts = []
    for name in COMPOSE_PROXY["secrets"]:
        path = secrets / name
        path.write_text(SECRET_VALUES[name])
        # Readable by the proxy's uid inside; the folder (0700, root's) guards it on the host.
        path.chmod(0o444)
        mounts += ["--volume", f"{path}:{SECRETS_DIR}/{name}:ro"]
    started: list[Container] = []

    def start(*options: str) -> Proxy:
        port = free_port()
        environment = {
            **COMPOSE_PROXY["environment"],
            "PORT": str(port),
            "GUNICORN_CMD_ARGS": f"--bind=127.0.0.1:{port}",
            "GEMINI_API_BASE": simulator,
            "WEB_CONCURRENCY": "2",
        }
        arguments = [f"--env={name}={value}" for name, value in environment.items()]
        if COMPOSE_PROXY["read_only"]:
            arguments.append("--read-only")
        arguments += [f"--tmpfs={mount}" for mount in COMPOSE_PROXY["tmpfs"]]
        container = engine.run(image, *arguments, *mounts, *options)
        started.append(container)
        return Proxy(container, port)

    yield start
    for container in started:
        container.remove()


@pytest.fixture
def proxy(start_proxy: Callable[..., Proxy]) -> Proxy:
    """The image's server, answering /health."""
    server = start_proxy()
    try:
        wait_for(lambda: answers(f"{server.url}/health"), timeout=STARTUP_TIMEOUT)
    except AssertionError:
        pytest.fail(f"the image's server did not answer /health:\n{server.container.logs()}")
    return server


def test_compose_passes_the_keys_and_password_as_secret_files() -> None:
    """What the tests below mount is what compose declares: one secret per _FILE variable."""
    environment = COMPOSE_PROXY["environment"]
    assert set(COMPOSE_PROXY["secrets"]) == set(SECRET_VALUES)
    assert environment["GEMINI_API_KEY_LIST_FILE"] == f"{SECRETS_DIR}/gemini_api_keys"
    assert environment["api_password_FILE"] == f"{SECRETS_DIR}/api_password"


def test_the_server_runs_read_only_as_uid_and_gid_10001_and_answers_health(
    engine: Engine, proxy: Proxy
) -> None:
    """gunicorn and both its workers run as 10001:10001 (real, effective, saved and file-system
    ids, as the kernel has them), never root; the root is read-only, while /tmp (metrics,
    heartbeats) on its tmpfs is written to."""
    top = engine("podman", "top", proxy.container.id, "hpid", "args").stdout
    processes = [line.split(None, 1) for line in top.splitlines()[1:]]
    assert len(processes) == 3 and all("gunicorn" in args for _, args in processes)
    for pid, _ in processes:
        status = Path(f"/proc/{pid}/status").read_text()
        ids = re.findall(r"^(?:Uid|Gid):\s+(.*)$", status, re.MULTILINE)
        assert [set(line.split()) for line in ids] == [{str(RUNTIME_UID)}] * 2, status
    assert requests.get(f"{proxy.url}/health", timeout=REQUEST_TIMEOUT).json()["status"] == "ok"
    touched = engine("podman", "exec", proxy.container.id, "touch", "/srv/x", check=False)
    assert touched.returncode != 0 and "Read-only file system" in touched.stderr
    metrics = COMPOSE_PROXY["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert engine("podman", "exec", proxy.container.id, "ls", metrics).stdout.strip()


def test_the_images_healthcheck_reports_healthy(engine: Engine, proxy: Proxy) -> None:
    """`podman healthcheck run` runs the Dockerfile's HEALTHCHECK command: healthy."""
    assert engine("podman", "healthcheck", "run", proxy.container.id, check=False).returncode == 0
    state = engine("podman", "inspect", "--format", "{{json .State.Health}}", proxy.container.id)
    assert json.loads(state.stdout)["Status"] == "healthy"


def test_a_generation_streams_through_the_container_chunk_by_chunk(
    proxy: Proxy, simulator: str
) -> None:
    """The first chunk reaches the client while the simulator (same image) still streams."""
    configure(simulator, {}).raise_for_status()
    with generate(proxy, stream=True) as response:
        assert response.status_code == 200
        pieces = response.iter_content(chunk_size=None)
        first = next(pieces)
        assert control(simulator, "streams")["open"] == 1, "the chunks came all at once"
        chunks = json.loads(first + b"".join(pieces))
    assert len(chunks) > 1 and chunks[0]["is_complete"] is False
    assert chunks[-1]["is_complete"] is True and chunks[-1]["finish_reason"] == "STOP"


def test_sigterm_lets_the_stream_in_flight_finish_and_the_container_exit_0(
    engine: Engine, proxy: Proxy, simulator: str
) -> None:
    """`docker stop`'s signal in the middle of a stream: it completes, then gunicorn exits 0;
    nothing the container wrote holds a key or the password."""
    configure(simulator, {}).raise_for_status()
    with generate(proxy, stream=True) as response:
        pieces = response.iter_content(chunk_size=None)
        first = next(pieces)
        engine("podman", "kill", "--signal=TERM", proxy.container.id)
        assert control(simulator, "streams")["open"] == 1, "the stream ended before the signal"
        chunks = json.loads(first + b"".join(pieces))
    assert chunks[-1]["is_complete"] is True and chunks[-1]["finish_reason"] == "STOP"
    assert proxy.container.wait(STOP_TIMEOUT) == 0
    logs = proxy.container.logs()
    lines = [json.loads(line) for line in logs.splitlines()]
    (request,) = [line for line in lines if line.get("path") == "/generate"]
    assert request["outcome"] == "complete" and re.fullmatch(r"k\d", request["keys_tried"][0])
    assert any("Handling signal: term" in line["message"] for line in lines)
    assert not any(secret in logs for secret in (*KEYS, PASSWORD)), "a secret was logged"


def test_a_missing_secret_file_stops_the_container_with_one_line(
    start_proxy: Callable[..., Proxy],
) -> None:
    """A secret compose was not given: the container exits non-zero at once, the log says
    which variable and file, and nothing else (no traceback)."""
    proxy = start_proxy(f"--env=api_password_FILE={SECRETS_DIR}/not-there")
    assert proxy.container.wait(STOP_TIMEOUT) != 0
    logs = proxy.container.logs()
    assert "Traceback" not in logs
    errors = [json.loads(line) for line in logs.splitlines() if "api_password_FILE" in line]
    assert len(errors) == 1 and errors[0]["variable"] == "api_password_FILE"
    assert f"cannot read {SECRETS_DIR}/not-there" in errors[0]["message"]


def image_facts(engine: Engine, image: str, size: int) -> dict:
    """tests/image_facts.py's findings about an image (run as root, without a network)."""
    shown = engine(
        "podman", "run", "--rm", "--pull=never", "--network=none", "--user=0",
        f"--volume={IMAGE_FACTS}:/facts.py:ro", image, "python", "/facts.py", str(size),
    )  # fmt: skip
    return json.loads(shown.stdout)


def test_the_image_holds_the_server_and_its_runtime_only(engine: Engine, image: str) -> None:
    """No tests, no dev tool, no .git, and the build host's CA bundle nowhere (the base image's
    is as it was); the code owned by root, no file executable, every folder traversable."""
    host_bundle = CA_BUNDLE.read_bytes()
    facts = image_facts(engine, image, len(host_bundle))
    (base,) = base_images(DOCKERFILE)
    base_bundle = image_facts(engine, base, -1)["ca_bundle_sha256"]
    assert facts["ca_bundle_sha256"] == base_bundle, "the build changed the system's CA bundle"
    if sha256(host_bundle) != base_bundle:
        assert sha256(host_bundle) not in facts["hashes_of_that_size"], "the host's CA bundle"
    distributions = {normalized(name) for name in facts["distributions"]}
    assert distributions >= RUNTIME and not distributions & DEV_ONLY
    assert facts["gits"] == []
    server = facts["server"]
    assert {path.split("/")[0] for path in server} == SERVER_FILES
    assert all(entry["uid"] == 0 for entry in server.values()), "the server may rewrite its code"
    modes = {path: (entry["mode"], entry["folder"]) for path, entry in server.items()}
    assert {mode for mode, folder in modes.values() if folder} == {0o755}
    assert {mode for mode, folder in modes.values() if not folder} == {0o644}
    assert {"app/config.py", "wsgi.py", "gunicorn.conf.py"} <= set(modes)
    assert not any("test" in path for path in modes)
