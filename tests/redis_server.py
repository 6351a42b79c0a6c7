"""A real redis-server for the tests, on a Unix socket in a temporary folder.

Usage::

    server = RedisServer.start(tmp_path)   # skips (fails in CI) without redis-server
    client = redis.Redis(unix_socket_path=server.socket)
    server.stop()

`.ci/run` installs Debian's redis-server and sets REDIS_TESTS_REQUIRE_SERVER=1, so a missing
program fails the run there; elsewhere the tests skip, saying what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.servers import SHUTDOWN_TIMEOUT, wait_for

REQUIRED = os.environ.get("REDIS_TESTS_REQUIRE_SERVER") == "1"
# Debian puts redis-server in /usr/bin; a non-root PATH has it too.
PROGRAM = "redis-server"


@dataclass
class RedisServer:
    """One redis-server process: no persistence, no TCP port, its socket in `folder`."""

    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.folder / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @classmethod
    def start(cls, folder: Path) -> RedisServer:
        """A fresh server in `folder`, answering once this returns."""
        return cls(folder).restart()

    def restart(self) -> RedisServer:
        """(Re)start the process on the same socket, empty."""
        path = shutil.which(PROGRAM)
        if path is None:
            message = f"{PROGRAM} is not installed (Debian's package redis-server provides it)"
            if REQUIRED:
                pytest.fail(f"{message}; REDIS_TESTS_REQUIRE_SERVER=1 requires it")
            pytest.skip(message)
        self.socket.unlink(missing_ok=True)
        arguments = ["--port", "0", "--unixsocket", str(self.socket), "--save", "", "--appendonly"]
        self.process = subprocess.Popen(
            [path, *arguments, "no", "--dir", str(self.folder)], stdout=subprocess.DEVNULL
        )
        wait_for(self._answers)
        return self

    def _answers(self) -> bool:
        # The socket file appears at bind(), a moment before the server accepts on it.
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket)).ping())
        except redis.ConnectionError:
            return False

    def stored(self) -> str:
        """Every name, field and value in the server, as text (what a secret scan reads)."""
        client = redis.Redis(unix_socket_path=str(self.socket), decode_responses=True)
        # DUMP is compressed, so a secret would not show in it: read each name by its type.
        readers = {"hash": client.hgetall, "string": client.get}
        found = []
        for name in client.scan_iter():
            kind = client.type(name)
            assert kind in readers, f"{name} is a {kind}, which the scan does not read"
            found.append((name, readers[kind](name)))
        return repr(found)

    def stop(self) -> None:
        """Kill the process (no goodbye to clients, as a crash would)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(SHUTDOWN_TIMEOUT)
