"""The JavaScript clients' folder (tests/js), each client's base URL, and its locked dependencies,
installed once per lockfile, for the tests that run Node: the client tests and the README's JS
snippets.

Usage::

    js_dir = install_js_clients()  # skips (or fails, where JS_CLIENT_TESTS_REQUIRE_NODE is set)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.servers import REPO_ROOT

JS_DIR = REPO_ROOT / "tests" / "js"
REQUIRE_NODE = "JS_CLIENT_TESTS_REQUIRE_NODE"
# npm ci rewrites node_modules; this stamp there names the lockfile it was made from.
INSTALLED_STAMP = JS_DIR / "node_modules" / ".installed-from-lockfile"
NPM_TIMEOUT = 300
CLIENT_TIMEOUT = 60
# Each client's base URL as its users set it, made from the host (scheme://host:port), and the
# API version it then calls: @google/genai adds its own version (v1 by default), the Vercel
# provider wants host + /v1beta and adds nothing.
CLIENTS: dict[str, tuple[Callable[[str], str], str]] = {
    "google-genai": (lambda host: host, "v1"),
    "vercel-ai": (lambda host: f"{host}/v1beta", "v1beta"),
}


def install_js_clients() -> Path:
    """tests/js with its locked dependencies installed; skipped (or failed) without Node."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        message = f"{' and '.join(missing)} not found: the JavaScript client tests need Node.js"
        if os.environ.get(REQUIRE_NODE):
            pytest.fail(f"{message} ({REQUIRE_NODE} is set)")
        pytest.skip(message)
    lockfile = hashlib.sha256((JS_DIR / "package-lock.json").read_bytes()).hexdigest()
    if not INSTALLED_STAMP.is_file() or INSTALLED_STAMP.read_text() != lockfile:
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
        )
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}{result.stderr}"
        INSTALLED_STAMP.write_text(lockfile)
    return JS_DIR
