"""Secrets from files, as Docker and Kubernetes pass them, with the real gunicorn: served with
GEMINI_API_KEY_LIST_FILE and api_password_FILE, kept out of the log, or refused at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.client import generate, raw_exchange, upstream_calls
from tests.servers import KEYS, PASSWORD, ProxyServer, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def from_files(tmp_path: Path) -> dict[str, str]:
    """The proxy's environment overrides: the keys (one per line) and the password in files."""
    keys, password = tmp_path / "gemini_api_keys", tmp_path / "api_password"
    keys.write_text("\n".join(KEYS) + "\n")
    password.write_text(PASSWORD + "\n")
    return {
        "GEMINI_API_KEY_LIST": "",
        "api_password": "",
        "GEMINI_API_KEY_LIST_FILE": str(keys),
        "api_password_FILE": str(password),
    }


def test_the_proxy_serves_with_the_keys_and_password_its_files_hold(
    start_proxy, sim: str, from_files: dict[str, str]
) -> None:
    """The password from the file lets a client in, the default does not; Gemini is called with
    a key from the file."""
    proxy: ProxyServer = start_proxy(workers=1, **from_files)
    assert generate(proxy).status_code == 200
    assert generate(proxy, password="kkb").status_code == 401
    (call,) = upstream_calls(sim)
    assert call["key"] in KEYS


def test_a_password_read_from_a_file_is_blanked_from_gunicorns_own_lines(
    start_proxy, from_files: dict[str, str]
) -> None:
    """gunicorn logs an invalid request line as sent; the password in it (not shaped like
    anything the filter's patterns know) is blanked because the filter read the file too."""
    proxy: ProxyServer = start_proxy(workers=1, **from_files)
    bad_line = f"GET /{PASSWORD}\tx HTTP/1.1\r\nHost: x\r\n\r\n"
    assert raw_exchange(proxy, bad_line.encode())[0] == 400
    wait_for(lambda: "Invalid request" in proxy.output())
    proxy.stop()
    (logged,) = [line for line in proxy.log_lines() if "Invalid request" in line["message"]]
    assert "[REDACTED]" in logged["message"] and PASSWORD not in proxy.output()


@pytest.mark.parametrize(
    ("overrides", "variable", "problem"),
    [
        ({"GEMINI_API_KEY_LIST_FILE": "/nonexistent/keys"}, "GEMINI_API_KEY_LIST_FILE", "cannot"),
        ({"api_password_FILE": "/"}, "api_password_FILE", "cannot read /: Is a directory"),
        ({"GEMINI_API_KEY_LIST": ",".join(KEYS)}, "GEMINI_API_KEY_LIST_FILE", "not both"),
        ({"api_password": PASSWORD}, "api_password_FILE", "not both"),
    ],
    ids=["missing-keys-file", "password-file-a-directory", "keys-both-ways", "password-both-ways"],
)
def test_a_secret_file_the_proxy_cannot_use_stops_the_start_with_one_line(
    start_proxy, from_files: dict[str, str], overrides: dict[str, str], variable: str, problem: str
) -> None:
    """gunicorn exits non-zero before any worker, with one JSON line naming the variable."""
    proxy: ProxyServer = start_proxy(wait=False, **{**from_files, **overrides})
    assert proxy.process.wait(30) != 0
    errors = [line for line in proxy.log_lines() if line.get("variable") == variable]
    assert len(errors) == 1 and problem in errors[0]["message"]
    assert "Traceback" not in proxy.output()
