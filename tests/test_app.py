"""Start-up: the app factory and the gunicorn settings, without a server."""

from __future__ import annotations

import hmac
import logging
import os
import runpy
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

import flask
import pytest
from flask.testing import FlaskClient

from app import create_app
from app.auth import password_matches
from app.config import MAX_SECRET_FILE_BYTES, Config
from app.proxy import get_proxy
from app.redact import GEMINI_KEY
from tests.client import PROMPT
from tests.fakes import AUTH, SECRET_KEY, Call, FakeGemini, FakeStream

CONF = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"


@pytest.mark.parametrize(("password", "warned"), [("kkb", True), ("a-real-secret", False)])
def test_a_default_password_is_warned_about_at_start_without_printing_it(
    caplog: pytest.LogCaptureFixture, password: str, warned: bool
) -> None:
    """Leaving api_password at 'kkb' logs a warning; the warning never holds the password."""
    with caplog.at_level(logging.WARNING, logger="gemini_proxy"):
        create_app(Config(api_keys=("k",), api_password=password))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warnings) is warned
    assert all(password not in message for message in warnings)


def load_gunicorn_conf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> dict:
    """Run gunicorn.conf.py as gunicorn's master would, with the given environment."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in (
        "PORT",
        "WEB_CONCURRENCY",
        "WORKER_CONNECTIONS",
        "ACCESS_LOG",
        "GEMINI_API_KEY_LIST",
        "api_password",
        "GEMINI_API_KEY_LIST_FILE",
        "api_password_FILE",
        "GEVENT_TRACK_GREENLET_TREE",
    ):
        # Set before it is deleted, so monkeypatch restores it even where the conf sets it.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def test_gunicorn_binds_port_on_all_interfaces_with_a_worker_per_cpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Defaults: 0.0.0.0:1231, one gevent worker per CPU this process may use."""
    conf = load_gunicorn_conf(monkeypatch, tmp_path)
    assert conf["bind"] == ["0.0.0.0:1231"]
    assert conf["workers"] == len(os.sched_getaffinity(0))
    assert conf["worker_class"] == "gevent"
    assert conf["preload_app"] is False


def test_gunicorn_reads_port_workers_and_connections_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """PORT, WEB_CONCURRENCY and WORKER_CONNECTIONS are honoured (a -b flag still wins)."""
    conf = load_gunicorn_conf(
        monkeypatch, tmp_path, PORT="4321", WEB_CONCURRENCY="3", WORKER_CONNECTIONS="77"
    )
    assert (conf["bind"], conf["workers"], conf["worker_connections"]) == (["0.0.0.0:4321"], 3, 77)


@pytest.mark.parametrize(("set_to", "seen"), [(None, "0"), ("1", "1")])
def test_gevent_stops_recording_where_greenlets_were_spawned_unless_the_operator_asks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, set_to: str | None, seen: str
) -> None:
    """The workers inherit GEVENT_TRACK_GREENLET_TREE=0; an operator's own value is kept."""
    load_gunicorn_conf(
        monkeypatch, tmp_path, **({} if set_to is None else {"GEVENT_TRACK_GREENLET_TREE": set_to})
    )
    assert os.environ["GEVENT_TRACK_GREENLET_TREE"] == seen


def test_the_listen_backlog_follows_the_connections_the_workers_hold(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """backlog is workers x worker_connections, so a burst the workers can hold is queued."""
    conf = load_gunicorn_conf(monkeypatch, tmp_path, WEB_CONCURRENCY="3", WORKER_CONNECTIONS="77")
    assert conf["backlog"] == min(3 * 77, conf["somaxconn"]())


@pytest.mark.parametrize(
    ("workers", "connections", "somaxconn", "backlog"),
    [(2, 100, 4096, 200), (2, 4096, 4096, 4096), (4, 4096, 65535, 16384), (1, 5000, 128, 128)],
)
def test_the_listen_backlog_is_capped_by_the_kernels_somaxconn(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    workers: int,
    connections: int,
    somaxconn: int,
    backlog: int,
) -> None:
    """The kernel silently cuts a listen() backlog to net.core.somaxconn; the setting says so."""
    conf = load_gunicorn_conf(monkeypatch, tmp_path)
    assert conf["listen_backlog"](workers, connections, somaxconn) == backlog


def test_somaxconn_is_read_from_the_kernel_or_taken_as_its_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """/proc/sys/net/core/somaxconn when readable; Linux's default (4096) when not."""
    conf = load_gunicorn_conf(monkeypatch, tmp_path)
    kernel = Path("/proc/sys/net/core/somaxconn")
    if kernel.exists():
        assert conf["somaxconn"]() == int(kernel.read_text())
    assert conf["somaxconn"](str(tmp_path / "absent")) == conf["DEFAULT_SOMAXCONN"] == 4096


def test_the_access_log_never_prints_the_query_string(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """%(r)s and %(q)s carry ?password=; the format uses the bare path %(U)s."""
    conf = load_gunicorn_conf(monkeypatch, tmp_path)
    assert "%(U)s" in conf["access_log_format"]
    assert "%(r)s" not in conf["access_log_format"] and "%(q)s" not in conf["access_log_format"]


def test_the_master_imports_no_app_code_requests_or_urllib3(tmp_path: Path) -> None:
    """Loading gunicorn.conf.py leaves app, requests, urllib3 and ssl unimported for gevent."""
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        "print([m for m in ('app', 'requests', 'urllib3', 'ssl', 'flask') if m in sys.modules])"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code, str(CONF)], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_every_log_line_is_scrubbed_of_keys_and_the_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The filter on gunicorn's JSON handler blanks configured secrets, key shapes, ?password=."""
    conf = load_gunicorn_conf(
        monkeypatch, tmp_path, GEMINI_API_KEY_LIST="odd-key-1, odd-key-2", api_password="hunter22"
    )
    google_shaped = "AIza" + "b" * 35
    message = "bad line 'GET /generate?password=%s&x=1' key %s then %s and %s, '/v1beta?key=%s'"
    record = logging.LogRecord(
        "gunicorn.error", logging.ERROR, __file__, 1, message,
        ("qs-secret", "odd-key-2", google_shaped, "hunter22", "old-password"), None,
    )  # fmt: skip
    assert conf["RedactSecrets"]().filter(record) is True
    line = record.getMessage()
    for secret in ("qs-secret", "odd-key-2", google_shaped, "hunter22", "old-password"):
        assert secret not in line
    assert line.count("[REDACTED]") == 5


def test_secrets_given_in_files_are_scrubbed_as_the_app_reads_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With GEMINI_API_KEY_LIST_FILE and api_password_FILE, the filter blanks the keys and the
    password the app reads from those files: the same values, parsed the same way."""
    keys, password = tmp_path / "keys", tmp_path / "password"
    keys.write_text("file-key-1\n file-key-2 ,file-key-3\n")
    password.write_text("file-password\n")
    conf = load_gunicorn_conf(
        monkeypatch, tmp_path, GEMINI_API_KEY_LIST_FILE=str(keys), api_password_FILE=str(password)
    )
    config = Config.from_env(os.environ)
    redact = conf["RedactSecrets"]()
    assert sorted(redact.secrets) == sorted((*config.api_keys, config.api_password))
    line = redact.clean("file-key-2 and file-password in a line")
    assert line == "[REDACTED] and [REDACTED] in a line"
    assert conf["MAX_SECRET_FILE_BYTES"] == MAX_SECRET_FILE_BYTES


def test_tracebacks_in_log_lines_are_scrubbed_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An exception whose text holds a key is logged without it."""
    conf = load_gunicorn_conf(monkeypatch, tmp_path, GEMINI_API_KEY_LIST="odd-key-1")
    try:
        raise RuntimeError("failed with odd-key-1")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    conf["RedactSecrets"]().filter(record)
    assert record.exc_info is None
    assert "odd-key-1" not in record.exc_text and "RuntimeError" in record.exc_text


def test_the_app_and_the_log_filter_know_the_same_key_shape(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """gunicorn.conf.py cannot import app.redact, so its pattern is checked against it here."""
    conf = load_gunicorn_conf(monkeypatch, tmp_path)
    assert GEMINI_KEY.pattern in conf["RedactSecrets"].PATTERN.pattern


def test_the_upstream_pool_is_sized_from_worker_connections() -> None:
    """Each worker's pool keeps as many connections as the worker holds streams."""
    app = create_app(Config(api_keys=("k",), worker_connections=37))
    with app.app_context():
        session = get_proxy().client.session
    assert session.get_adapter("https://generativelanguage.googleapis.com/")._pool_maxsize == 37


def test_an_unexpected_error_is_a_generic_json_500_logged_with_its_request_id(
    caplog: pytest.LogCaptureFixture, gemini: FakeGemini, client: FlaskClient
) -> None:
    """A bug gives a 500 that says nothing of it (or of any key); the log has the detail."""

    def bug(call: Call) -> list[bytes]:
        raise RuntimeError(f"boom with {SECRET_KEY}")

    gemini.handler = bug
    headers = {**AUTH, "X-Request-ID": "bug-1"}
    with caplog.at_level(logging.ERROR):
        response = client.post("/generate", json=PROMPT, headers=headers)
    assert response.status_code == 500
    assert response.json["error"]["message"] == "internal error; see the proxy's log"
    assert SECRET_KEY not in response.get_data(as_text=True)
    (logged,) = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert logged.request_id == "bug-1" and logged.exc_info


def test_the_upstream_is_closed_when_it_fails_before_the_first_chunk(
    gemini: FakeGemini, client: FlaskClient
) -> None:
    """A stream that fails before any chunk is closed at once, not left to the collector."""
    stream = FakeStream([b"data: {not json\r\n\r\n"])
    gemini.handler = lambda call: stream
    response = client.post("/generate", json=PROMPT, headers=AUTH)
    assert response.status_code == 502
    assert stream.closed


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"Authorization": "Bearer {}"}, ""),
        ({"Authorization": "bearer {}"}, ""),
        ({"x-api-key": "{}"}, ""),
        ({"x-goog-api-key": "{}"}, ""),
        ({}, "?password={}"),
        ({}, "?key={}"),
    ],
    ids=["bearer", "lowercase-bearer", "x-api-key", "x-goog-api-key", "query", "query-key"],
)
def test_a_non_ascii_password_works_in_every_place_and_is_compared_in_constant_time(
    monkeypatch: pytest.MonkeyPatch, headers: dict[str, str], query: str
) -> None:
    """UTF-8 passwords: header bytes arrive as latin-1 text, the query as UTF-8; both match."""
    password = "pässwörd-☕"
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    app = create_app(Config(api_keys=("k",), api_password=password))
    as_wsgi_text = password.encode().decode("latin-1")  # how WSGI hands a header value over
    sent = {name: value.format(as_wsgi_text) for name, value in headers.items()}
    url = "/generate" + query.format(urllib.parse.quote(password))
    with app.test_request_context(url, method="POST", headers=sent):
        assert password_matches(flask.request, password)
        assert not password_matches(flask.request, password + "x")
    assert calls, "hmac.compare_digest was not used"


@pytest.mark.parametrize("operator_named_it", [True, False])
def test_only_a_metrics_folder_gunicorn_made_is_removed_on_exit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, operator_named_it: bool
) -> None:
    """Our own temp folder goes at exit; an operator's (a tmpfs, a volume) stays."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    if operator_named_it:
        conf = load_gunicorn_conf(monkeypatch, tmp_path / "named")
    else:
        # set, then unset, so that monkeypatch also undoes what the config file sets itself
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
        conf = runpy.run_path(str(CONF))
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    conf["on_exit"](None)
    assert folder.exists() is operator_named_it
