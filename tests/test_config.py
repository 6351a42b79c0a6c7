"""Configuration from the environment: defaults, parsing and errors that name the variable."""

from __future__ import annotations

import pytest

from app.config import Config, ConfigError


def test_defaults_are_the_specifications() -> None:
    """Only the key list is required; everything else has the specification's default."""
    config = Config.from_env({"GEMINI_API_KEY_LIST": "a"})
    assert config.model_id == "gemini-2.5-flash"
    assert config.chunk_token == 50
    assert config.api_password == "kkb"
    assert config.password_is_default
    assert config.api_base == "https://generativelanguage.googleapis.com"
    assert config.upstream_timeout == 300
    assert (config.max_attempts, config.key_disable_seconds) == (3, 3600)
    assert (config.keepalive_seconds, config.failover_deadline) == (15, 600)


def test_key_list_ignores_spaces_and_empty_entries() -> None:
    """' a, ,b ,,' is two keys."""
    assert Config.from_env({"GEMINI_API_KEY_LIST": " a, ,b ,,"}).api_keys == ("a", "b")


def test_settings_are_read_from_their_variables() -> None:
    """Each variable lands in its field."""
    config = Config.from_env(
        {
            "GEMINI_API_KEY_LIST": "a",
            "MODEL_ID": "gemini-2.5-pro",
            "chunk_token": "7",
            "api_password": "s3cret",
            "GEMINI_API_BASE": "http://127.0.0.1:9/",
            "UPSTREAM_TIMEOUT": "2.5",
            "MAX_ATTEMPTS": "5",
            "KEY_DISABLE_SECONDS": "60",
            "KEEPALIVE_SECONDS": "0.5",
            "FAILOVER_DEADLINE": "30",
        }
    )
    assert (config.max_attempts, config.key_disable_seconds) == (5, 60)
    assert (config.keepalive_seconds, config.failover_deadline) == (0.5, 30)
    assert (config.model_id, config.chunk_token, config.api_password) == (
        "gemini-2.5-pro",
        7,
        "s3cret",
    )
    assert (config.api_base, config.upstream_timeout) == ("http://127.0.0.1:9", 2.5)
    assert not config.password_is_default


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({}, "GEMINI_API_KEY_LIST"),
        ({"GEMINI_API_KEY_LIST": " , ,"}, "GEMINI_API_KEY_LIST"),
        ({"chunk_token": "0"}, "chunk_token"),
        ({"chunk_token": "-5"}, "chunk_token"),
        ({"chunk_token": "ten"}, "chunk_token"),
        ({"chunk_token": "2.5"}, "chunk_token"),
        ({"UPSTREAM_TIMEOUT": "0"}, "UPSTREAM_TIMEOUT"),
        ({"UPSTREAM_TIMEOUT": "nan"}, "UPSTREAM_TIMEOUT"),
        ({"UPSTREAM_TIMEOUT": "inf"}, "UPSTREAM_TIMEOUT"),
        ({"MODEL_ID": "models/../x"}, "MODEL_ID"),
        ({"api_password": ""}, "api_password"),
        ({"GEMINI_API_BASE": "ftp://x"}, "GEMINI_API_BASE"),
        ({"WORKER_CONNECTIONS": "0"}, "WORKER_CONNECTIONS"),
        ({"MAX_ATTEMPTS": "0"}, "MAX_ATTEMPTS"),
        ({"MAX_ATTEMPTS": "1.5"}, "MAX_ATTEMPTS"),
        ({"KEY_DISABLE_SECONDS": "-1"}, "KEY_DISABLE_SECONDS"),
        ({"KEEPALIVE_SECONDS": "0"}, "KEEPALIVE_SECONDS"),
        ({"KEEPALIVE_SECONDS": "0.01"}, "KEEPALIVE_SECONDS"),
        ({"FAILOVER_DEADLINE": "soon"}, "FAILOVER_DEADLINE"),
    ],
)
def test_bad_settings_raise_an_error_naming_the_variable(
    environ: dict[str, str], variable: str
) -> None:
    """Each bad value is refused with its variable's name first in the message."""
    environ = (
        {"GEMINI_API_KEY_LIST": "a", **environ} if variable != "GEMINI_API_KEY_LIST" else environ
    )
    with pytest.raises(ConfigError) as caught:
        Config.from_env(environ)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")


@pytest.mark.parametrize(
    ("keys", "max_attempts", "attempts"), [("a,b,c", 3, 3), ("a", 3, 1), ("a,b", 1, 1)]
)
def test_attempts_per_request_never_exceed_the_keys(
    keys: str, max_attempts: int, attempts: int
) -> None:
    """MAX_ATTEMPTS is capped by the number of keys: no key is tried twice for one request."""
    config = Config.from_env({"GEMINI_API_KEY_LIST": keys, "MAX_ATTEMPTS": str(max_attempts)})
    assert config.attempts_per_request == attempts
