"""Configuration from the environment: defaults, parsing and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import MAX_SECRET_FILE_BYTES, Config, ConfigError


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
        ({"GEMINI_API_KEY_LIST": "a,b,a"}, "GEMINI_API_KEY_LIST"),
        ({"REDIS_URL": "http://redis:6379/0"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://redis:port/0"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://redis:99999/0"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://redis/0?socket_timeout=soon"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://redis/0?colour=blue"}, "REDIS_URL"),
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
    ("environ", "secret"),
    [
        ({"GEMINI_API_KEY_LIST": "AIza-one,AIza-two,AIza-one"}, "AIza-one"),
        ({"GEMINI_API_KEY_LIST": "a", "REDIS_URL": "redis://:hunter2@redis:x/0"}, "hunter2"),
    ],
    ids=["key-listed-twice", "redis-url-with-password"],
)
def test_a_refused_secret_is_named_by_its_place_never_quoted(
    environ: dict[str, str], secret: str
) -> None:
    """A key listed twice is named by its ids; a bad REDIS_URL is not repeated."""
    with pytest.raises(ConfigError) as caught:
        Config.from_env(environ)
    assert secret not in str(caught.value)


@pytest.mark.parametrize(
    ("keys", "max_attempts", "attempts"), [("a,b,c", 3, 3), ("a", 3, 1), ("a,b", 1, 1)]
)
def test_attempts_per_request_never_exceed_the_keys(
    keys: str, max_attempts: int, attempts: int
) -> None:
    """MAX_ATTEMPTS is capped by the number of keys: no key is tried twice for one request."""
    config = Config.from_env({"GEMINI_API_KEY_LIST": keys, "MAX_ATTEMPTS": str(max_attempts)})
    assert config.attempts_per_request == attempts


# --- secrets from files (GEMINI_API_KEY_LIST_FILE, api_password_FILE) ----------------------------


@pytest.mark.parametrize(
    "content",
    ["k-1,k-2", "k-1\nk-2\n", "k-1\r\nk-2\r\n", " k-1 , \n\n k-2 ,\n"],
    ids=["commas", "lines", "crlf-lines", "mixed-with-blanks"],
)
def test_keys_can_come_from_a_file_one_per_line_or_comma_separated(
    tmp_path: Path, content: str
) -> None:
    """GEMINI_API_KEY_LIST_FILE names the file; spaces, blank lines and empty entries go."""
    path = tmp_path / "keys"
    path.write_text(content)
    config = Config.from_env({"GEMINI_API_KEY_LIST_FILE": str(path)})
    assert config.api_keys == ("k-1", "k-2")


@pytest.mark.parametrize(
    ("content", "password"),
    [("s3cret\n", "s3cret"), ("s3cret", "s3cret"), (" two words \r\n", " two words ")],
)
def test_the_password_can_come_from_a_file_without_its_final_line_break(
    tmp_path: Path, content: str, password: str
) -> None:
    """api_password_FILE: the content as it is, but for the line break editors add at the end."""
    path = tmp_path / "password"
    path.write_text(content, newline="")
    config = Config.from_env({"GEMINI_API_KEY_LIST": "a", "api_password_FILE": str(path)})
    assert config.api_password == password and not config.password_is_default


@pytest.mark.parametrize("name", ["GEMINI_API_KEY_LIST", "api_password"])
def test_an_empty_variable_beside_its_file_counts_as_unset(tmp_path: Path, name: str) -> None:
    """`NAME=` left empty (an env file's placeholder line) does not clash with NAME_FILE."""
    path = tmp_path / "secret"
    path.write_text("from-the-file\n")
    environ = {"GEMINI_API_KEY_LIST": "a", name: "", f"{name}_FILE": str(path)}
    config = Config.from_env(environ)
    assert "from-the-file" in (*config.api_keys, config.api_password)


@pytest.mark.parametrize("name", ["GEMINI_API_KEY_LIST", "api_password"])
def test_a_secret_set_both_ways_is_refused_naming_both_variables(tmp_path: Path, name: str) -> None:
    """Which one wins would be a guess: the variable and its _FILE together are an error."""
    path = tmp_path / "secret"
    path.write_text("x\n")
    environ = {"GEMINI_API_KEY_LIST": "a", name: "b", f"{name}_FILE": str(path)}
    with pytest.raises(ConfigError) as caught:
        Config.from_env(environ)
    assert caught.value.variable == f"{name}_FILE"
    assert f"{name} " in str(caught.value) and "not both" in str(caught.value)


# Content that must never reach an error message.
MARK = b"SECRET-MARK"
BAD_FILES = {
    "missing": (None, "No such file or directory"),
    "a-directory": ("dir", "Is a directory"),
    "empty": (b"", "is empty"),
    "only-line-breaks": (b"\n\r\n", "is empty"),
    "not-utf-8": (b"\xff\xfe" + MARK + b"\n", "is not UTF-8 text"),
    "too-large": (MARK * (MAX_SECRET_FILE_BYTES // len(MARK) + 1), "is over 1048576 bytes"),
}


@pytest.mark.parametrize("name", ["GEMINI_API_KEY_LIST", "api_password"])
@pytest.mark.parametrize(("content", "problem"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_secret_file_that_cannot_be_used_is_a_one_line_error_naming_it(
    tmp_path: Path, name: str, content: bytes | str | None, problem: str
) -> None:
    """The error names the _FILE variable, the path and the problem, never the content."""
    path = tmp_path / "secret"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    environ = {"GEMINI_API_KEY_LIST": "a", name: "", f"{name}_FILE": str(path)}
    with pytest.raises(ConfigError) as caught:
        Config.from_env(environ)
    message = str(caught.value)
    assert caught.value.variable == f"{name}_FILE"
    assert message.startswith(f"{name}_FILE: ") and str(path) in message and problem in message
    assert "\n" not in message and MARK.decode() not in message
