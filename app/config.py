"""Proxy settings read from the environment, validated once at start.

Usage::

    config = Config.from_env(os.environ)

The secrets may come from files instead, as Docker and Kubernetes secrets are passed:
GEMINI_API_KEY_LIST_FILE and api_password_FILE name a file holding the value.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

# Imported for the URL check only; the client itself is made in the app factory, after the fork.
import redis

DEFAULT_MODEL_ID = "gemini-2.5-flash"
DEFAULT_CHUNK_TOKEN = 50
DEFAULT_PASSWORD = "kkb"
DEFAULT_API_BASE = "https://generativelanguage.googleapis.com"
DEFAULT_UPSTREAM_TIMEOUT = 300.0
# gunicorn's own default; gunicorn.conf.py reads the same variable so the pool matches the worker.
DEFAULT_WORKER_CONNECTIONS = 4096
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_KEY_DISABLE_SECONDS = 3600.0
# Below the idle limits of common load balancers and CDNs (60 s and up), well above a chunk's gap.
DEFAULT_KEEPALIVE_SECONDS = 15.0
# Spaces more often than this would be traffic, not a keep-alive.
MIN_KEEPALIVE_SECONDS = 0.1
# What redis-py's Redis.from_url takes: TCP, TLS, or a Unix socket.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# Twice the default upstream timeout: one attempt may time out and another still have its turn.
DEFAULT_FAILOVER_DEADLINE = 600.0

Number = TypeVar("Number", int, float)

# A model id as it goes into the upstream path: no '/', ':', '..' or leading dot can change the
# path's meaning; 128 characters is far above any Gemini model name. MODEL_ID, /generate's
# ?model= and the native routes' model all follow it, and all say it in these words.
MODEL_NAME = re.compile(r"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MODEL_NAME_RULE = (
    "must be letters, digits, '.', '-' and '_', starting with a letter or digit, without '..',"
    " at most 128 characters (e.g. gemini-2.5-flash)"
)
DEFAULT_PORT = 1231
MAX_PORT = 65535
# An on/off variable: unset or empty means its default.
SWITCH_VALUES = ("", "0", "1")
# NAME_FILE names a file holding NAME's value: the convention of Docker and Kubernetes secrets.
FILE_SUFFIX = "_FILE"
# Far above any key list or password; a larger "secret" is a wrong path (a log, a device).
MAX_SECRET_FILE_BYTES = 1024 * 1024
# Keys are comma-separated, or one per line (as a secret file is usually written).
KEY_SEPARATOR = re.compile(r"[,\n]")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class Config:
    """Everything the proxy reads from its environment."""

    api_keys: tuple[str, ...]
    model_id: str = DEFAULT_MODEL_ID
    chunk_token: int = DEFAULT_CHUNK_TOKEN
    api_password: str = DEFAULT_PASSWORD
    api_base: str = DEFAULT_API_BASE
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT
    worker_connections: int = DEFAULT_WORKER_CONNECTIONS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    key_disable_seconds: float = DEFAULT_KEY_DISABLE_SECONDS
    keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS
    failover_deadline: float = DEFAULT_FAILOVER_DEADLINE
    # Unset: each worker keeps its own key state; set: every worker of every instance shares it.
    redis_url: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.api_keys:
            raise ConfigError("GEMINI_API_KEY_LIST", "no API key given (comma-separated list)")
        first_of = {key: number for number, key in reversed(list(enumerate(self.api_keys, 1)))}
        for number, key in enumerate(self.api_keys, 1):
            if first_of[key] != number:
                # By id: the message must not quote the key.
                twice = f"k{first_of[key]} and k{number} are the same key"
                raise ConfigError("GEMINI_API_KEY_LIST", twice)
        if not MODEL_NAME.fullmatch(self.model_id):
            raise ConfigError("MODEL_ID", MODEL_NAME_RULE)
        if not self.api_password:
            raise ConfigError("api_password", "must not be empty")
        if not self.api_base.startswith(("http://", "https://")):
            raise ConfigError("GEMINI_API_BASE", "must be an http:// or https:// URL")
        if self.redis_url is not None:
            _check_redis_url(self.redis_url)
        if self.keepalive_seconds < MIN_KEEPALIVE_SECONDS:
            raise ConfigError("KEEPALIVE_SECONDS", f"at least {MIN_KEEPALIVE_SECONDS} seconds")

    @property
    def attempts_per_request(self) -> int:
        """MAX_ATTEMPTS, never more than there are keys: no key is tried twice for one request."""
        return min(self.max_attempts, len(self.api_keys))

    @property
    def password_is_default(self) -> bool:
        """Whether the clients' password was left at the published default."""
        return self.api_password == DEFAULT_PASSWORD

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Config:
        """Build a Config from environment variables, raising ConfigError on bad values."""
        keys = KEY_SEPARATOR.split(read_secret(environ, "GEMINI_API_KEY_LIST") or "")
        password = read_secret(environ, "api_password")
        return cls(
            api_keys=tuple(key for key in map(str.strip, keys) if key),
            model_id=environ.get("MODEL_ID", DEFAULT_MODEL_ID).strip(),
            chunk_token=_positive(environ, "chunk_token", int, DEFAULT_CHUNK_TOKEN),
            api_password=DEFAULT_PASSWORD if password is None else password,
            api_base=environ.get("GEMINI_API_BASE", DEFAULT_API_BASE).strip().rstrip("/"),
            upstream_timeout=_positive(
                environ, "UPSTREAM_TIMEOUT", float, DEFAULT_UPSTREAM_TIMEOUT
            ),
            worker_connections=_positive(
                environ, "WORKER_CONNECTIONS", int, DEFAULT_WORKER_CONNECTIONS
            ),
            max_attempts=_positive(environ, "MAX_ATTEMPTS", int, DEFAULT_MAX_ATTEMPTS),
            key_disable_seconds=_positive(
                environ, "KEY_DISABLE_SECONDS", float, DEFAULT_KEY_DISABLE_SECONDS
            ),
            keepalive_seconds=_positive(
                environ, "KEEPALIVE_SECONDS", float, DEFAULT_KEEPALIVE_SECONDS
            ),
            failover_deadline=_positive(
                environ, "FAILOVER_DEADLINE", float, DEFAULT_FAILOVER_DEADLINE
            ),
            redis_url=(read_secret(environ, "REDIS_URL") or "").strip() or None,
        )


def read_secret(environ: Mapping[str, str], name: str) -> str | None:
    """The variable `name`, or the content of the file its `name_FILE` variable names.

    Usage: read_secret(os.environ, "api_password")  # None when neither is set

    Line breaks at the file's end are not part of the value. Both set (an empty variable counts
    as unset), or a file that cannot be read, is empty or is not UTF-8 text, is a ConfigError.
    """
    file_variable = name + FILE_SUFFIX
    path = environ.get(file_variable, "").strip()
    if not path:
        return environ.get(name)
    if environ.get(name):
        raise ConfigError(file_variable, f"set either {name} or {file_variable}, not both")
    try:
        with open(path, "rb") as file:
            content = file.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(file_variable, f"cannot read {path}: {error.strerror or error}") from None
    if len(content) > MAX_SECRET_FILE_BYTES:
        raise ConfigError(file_variable, f"{path} is over {MAX_SECRET_FILE_BYTES} bytes")
    try:
        value = content.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConfigError(file_variable, f"{path} is not UTF-8 text") from None
    if not value.strip():
        raise ConfigError(file_variable, f"{path} is empty")
    return value


def check_server_environ(environ: Mapping[str, str]) -> None:
    """Check the variables gunicorn.conf.py reads (it reads them leniently, to stay import-safe)."""
    port = _positive(environ, "PORT", int, DEFAULT_PORT)
    if port > MAX_PORT:
        raise ConfigError("PORT", f"expected a TCP port (1-{MAX_PORT}), got {port}")
    _positive(environ, "WEB_CONCURRENCY", int, 1)
    access_log = environ.get("ACCESS_LOG", "").strip()
    if access_log not in SWITCH_VALUES:
        raise ConfigError("ACCESS_LOG", f"expected 0 or 1, got {access_log!r}")


def _check_redis_url(url: str) -> None:
    """ConfigError unless the redis client can connect to `url` as given (scheme, host, port,
    database and query options), checked here so a bad one stops the start, not each worker."""
    # Never the value nor the client's message about it: either may quote Redis' password.
    if not url.startswith(REDIS_SCHEMES):
        raise ConfigError("REDIS_URL", "must be a redis://, rediss:// or unix:// URL")
    try:
        redis.ConnectionPool.from_url(url).make_connection()  # builds it; connects on first use
    except (ValueError, TypeError):
        problem = "the redis client cannot use this URL (its port, database or a query option)"
        raise ConfigError("REDIS_URL", problem) from None


def _positive(environ: Mapping[str, str], name: str, kind: type[Number], default: Number) -> Number:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = kind(raw.strip())
    except ValueError:
        raise ConfigError(name, f"expected a positive {kind.__name__}, got {raw!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(name, f"expected a positive {kind.__name__}, got {raw!r}")
    return value


def main() -> int:
    """Check the environment's settings; print one JSON line naming a bad variable.

    Usage: sys.exit(main())  (gunicorn.conf.py runs it in a child before any worker starts)

    It checks the app's settings and the server's (PORT, WEB_CONCURRENCY, ACCESS_LOG;
    WORKER_CONNECTIONS is one of the app's), so a bad value stops gunicorn with this line
    instead of a traceback.
    """
    try:
        check_server_environ(os.environ)
        Config.from_env(os.environ)
    except ConfigError as error:
        line = {
            "level": "CRITICAL",
            "logger": "gemini_proxy.config",
            "message": f"configuration error: {error}",
            "variable": error.variable,
        }
        print(json.dumps(line), flush=True)
        return 1
    return 0
