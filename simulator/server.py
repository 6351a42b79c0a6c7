"""A local Gemini API: Gemini-shaped answers and model lists, with failures scripted per API key.

Usage: python -m simulator --host 127.0.0.1 --port 8090 [--events 12] [--delay 0.25]

It speaks Gemini's REST API well enough for Google's own SDK (google-genai):
``POST /v1beta/models/{model}:streamGenerateContent`` (SSE with ``?alt=sse``, else Gemini's JSON
array), ``:generateContent`` (the same answer as one object), ``:countTokens``,
``GET /v1beta/models`` (paged with pageSize and pageToken) and ``GET /v1beta/models/{model}``.
Every call needs an ``x-goog-api-key``; the scripted failures apply to all of them. It also
serves loopback-only control endpoints under ``/_sim/``: ``PUT /_sim/behaviour`` scripts the
answers per key (pacing, cuts, stalls, Gemini's own error bodies and broken stream endings),
``GET|DELETE /_sim/requests`` is the log of received calls, ``GET /_sim/streams`` counts streams
and ``GET /_sim/health`` says it is up. It is self-contained (no imports from the rest of
``app``) and runs on gevent's WSGI server without monkey-patching, so one process can hold
thousands of concurrent streams.
"""

import argparse
import contextlib
import dataclasses
import errno
import functools
import hashlib
import ipaddress
import json
import re
import resource
import secrets
import signal
import sys
import time
import types
import typing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import gevent
from gevent.pywsgi import WSGIServer

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
# 12 events of 20 words 0.25 s apart: a demo crosses the proxy's 50-token chunks several times.
DEFAULT_EVENTS = 12
DEFAULT_DELAY = 0.25
DEFAULT_WORDS_PER_EVENT = 20
DEFAULT_FINISH_REASON = "STOP"
DEFAULT_MODEL = "gemini-sim"
DEFAULT_RESPONSE_ID = "sim-response"
# With stamp, each event's answer text ends with this mark and the event's send time.
STAMP_MARK = "@"
RESPONSE_ID_BYTES = 16
MAX_LOGGED_REQUESTS = 10_000
# Benchmarks open thousands of connections at once; the kernel caps this at somaxconn anyway.
LISTEN_BACKLOG = 4096
MIN_STATUS = 200
MAX_STATUS = 599
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

MODELS_PATH = "/v1beta/models"
# A model's own path, or one of its methods after the colon (`models/x:generateContent`).
MODEL_PATH = re.compile(r"/v1beta/models/(?P<model>[A-Za-z0-9._-]+)(?::(?P<method>[A-Za-z]+))?")
# The API methods served, named as in Google's discovery document.
STREAM_METHOD = "models.streamGenerateContent"
GENERATE_METHOD = "models.generateContent"
COUNT_TOKENS_METHOD = "models.countTokens"
LIST_MODELS_METHOD = "models.list"
GET_MODEL_METHOD = "models.get"
# The ones called with POST on `models/{model}:{method}`; `models/x:get` is none of them.
MODEL_METHODS = frozenset({STREAM_METHOD, GENERATE_METHOD, COUNT_TOKENS_METHOD})
CONTROL_PREFIX = "/_sim/"
API_KEY_ENVIRON = "HTTP_X_GOOG_API_KEY"
SSE_ALT = "sse"
# Gemini's default for a stream: one JSON array, written element by element as events arrive.
JSON_ALT = "json"
SSE_CONTENT_TYPE = "text/event-stream"
JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
EVENT_PREFIX = b"data: "
# Gemini separates events with CRLF CRLF, which clients must handle as well as LF LF.
EVENT_END = b"\r\n\r\n"
# Gemini's JSON-array stream: `[` and the first event, `\n,\r\n` before each next one, `\n]`.
ARRAY_OPEN = b"["
ARRAY_SEPARATOR = b"\n,\r\n"
ARRAY_CLOSE = b"\n]"
EMPTY_ARRAY = b"[]"
JSON_SEPARATORS = (",", ":")

# GET /v1beta/models lists these ids in this order; GET /v1beta/models/{id} 404s any other id.
MODELS: dict[str, tuple[str, str]] = {
    "gemini-2.5-flash": (
        "Gemini 2.5 Flash",
        "Stable version of Gemini 2.5 Flash, our mid-size multimodal model that supports up to "
        "1 million tokens, released in June of 2025.",
    ),
    "gemini-2.5-pro": (
        "Gemini 2.5 Pro",
        "Stable release (June 17th, 2025) of Gemini 2.5 Pro",
    ),
    DEFAULT_MODEL: (
        "Gemini Simulator",
        "The local simulator's own model: scripted answers, one token per word.",
    ),
}
# The fields every listed model shares, as Gemini describes its 2.5 models.
MODEL_VERSION = "001"
MODEL_INPUT_TOKEN_LIMIT = 1_048_576
MODEL_OUTPUT_TOKEN_LIMIT = 65_536
MODEL_GENERATION_METHODS = ("generateContent", "countTokens", "streamGenerateContent")
MODEL_TEMPERATURE = 1
MODEL_TOP_P = 0.95
MODEL_TOP_K = 64
MODEL_MAX_TEMPERATURE = 2
DEFAULT_PAGE_SIZE = 50
# Gemini caps pageSize at 1000 and reads 0 (or no pageSize) as its default.
MAX_PAGE_SIZE = 1000

# Multi-byte words (2-byte "é"/"ï", 4-byte emoji) make clients deal with UTF-8 split across reads.
ANSWER_TEXT = (
    "the quick proxy streams every chunk of tokens to a patient client while the café "
    "serves naïve benchmarks under steady load 🚀 and each counter stays honest until "
    "the final word arrives safely home"
)
THOUGHT_TEXT = (
    "first consider what the user really asks then weigh the options and plan a short "
    "clear answer step by step"
)
ANSWER_WORDS = tuple(ANSWER_TEXT.split())
THOUGHT_WORDS = tuple(THOUGHT_TEXT.split())

ERROR_STATUSES: dict[int, tuple[str, str]] = {
    HTTPStatus.BAD_REQUEST: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    HTTPStatus.UNAUTHORIZED: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    HTTPStatus.FORBIDDEN: ("PERMISSION_DENIED", "The caller does not have permission."),
    HTTPStatus.NOT_FOUND: ("NOT_FOUND", "Requested entity was not found."),
    HTTPStatus.TOO_MANY_REQUESTS: (
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
    ),
    HTTPStatus.INTERNAL_SERVER_ERROR: ("INTERNAL", "An internal error has occurred."),
    HTTPStatus.SERVICE_UNAVAILABLE: (
        "UNAVAILABLE",
        "The model is overloaded. Please try again later.",
    ),
    HTTPStatus.GATEWAY_TIMEOUT: ("DEADLINE_EXCEEDED", "The request timed out."),
}
UNKNOWN_ERROR_STATUS = ("UNKNOWN", "Unknown error.")
UNREGISTERED_CALLER_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)

# Named upstream failures (Behaviour.fault) and their HTTP status; fault_error builds the bodies.
FAULTS: dict[str, int] = {
    "quota": HTTPStatus.TOO_MANY_REQUESTS,
    "daily_quota": HTTPStatus.TOO_MANY_REQUESTS,
    "invalid_key": HTTPStatus.BAD_REQUEST,
    "forbidden": HTTPStatus.FORBIDDEN,
    "unavailable": HTTPStatus.SERVICE_UNAVAILABLE,
    "internal": HTTPStatus.INTERNAL_SERVER_ERROR,
}
# The free-tier limit each quota fault reports: (quotaId, quotaValue), as Gemini words them.
QUOTA_LIMITS: dict[str, tuple[str, str]] = {
    "quota": ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "10"),
    "daily_quota": ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "250"),
}
RPC_TYPE_PREFIX = "type.googleapis.com/google.rpc."
GEMINI_SERVICE = "generativelanguage.googleapis.com"
ERROR_DOMAIN = "googleapis.com"
RATE_LIMITS_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"
QUOTA_HELP = "Learn more about Gemini API quotas"
QUOTA_METRIC = f"{GEMINI_SERVICE}/generate_content_free_tier_requests"
QUOTA_LOCATION = "global"
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. "
    f"For more information on this error, head to: {RATE_LIMITS_URL}."
)
INVALID_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
INVALID_KEY_REASON = "API_KEY_INVALID"
MESSAGE_LOCALE = "en-US"
# Gemini really quotes the caller's key here, which is why a proxy must redact upstream messages.
SUSPENDED_MESSAGE = "Permission denied: Consumer 'api_key:{key}' has been suspended."
SUSPENDED_REASON = "CONSUMER_SUSPENDED"
SUSPENDED_CONSUMER = "projects/123456789"
# protobuf Durations (retryDelay) carry at most nanoseconds.
DURATION_DIGITS = 9
# Google pretty-prints its JSON errors, both as HTTP bodies and when it ends a stream with one.
PRETTY_INDENT = 2

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
ControlHandler = Callable[[bytes], tuple[int, dict[str, Any]]]
ApiHandler = Callable[["Call", StartResponse], Iterable[bytes]]


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """How the simulator answers a generation request; every field has a working default."""

    events: int = DEFAULT_EVENTS
    delay: float = DEFAULT_DELAY
    first_delay: float = 0.0
    words_per_event: int = DEFAULT_WORDS_PER_EVENT
    thought_events: int = 0
    finish_reason: str | None = DEFAULT_FINISH_REASON
    block_reason: str | None = None
    parts_extra: list[dict[str, Any]] | None = None
    status: int | None = None
    error_body: dict[str, Any] | None = None
    retry_after: int | None = None
    cut_after: int | None = None
    hang_before_headers: float = 0.0
    error_event_after: int | None = None
    # With error_event_after: end with the error as bare indented JSON instead of a data: event.
    error_bare: bool = False
    text: str | None = None
    stamp: bool = False
    # A FAULTS name: answer with Gemini's own error for it instead of streaming.
    fault: str | None = None
    # The quota faults' RetryInfo.retryDelay in seconds; None leaves RetryInfo out, as Gemini may.
    retry_delay: float | None = None
    # After this many events (0: right after the headers), say nothing for stall_seconds.
    stall_after: int | None = None
    stall_seconds: float = 30.0
    # A stream body sent exactly as given (a recorded Gemini stream), instead of made-up events.
    raw_body: str | None = None


BEHAVIOUR_FIELDS = {field.name: field.type for field in dataclasses.fields(Behaviour)}


class ConfigError(ValueError):
    """A behaviour configuration that cannot be applied."""


@dataclasses.dataclass(frozen=True)
class SimulatorConfig:
    """The default behaviour plus complete behaviours for the keys that override it."""

    default: Behaviour
    keys: dict[str, Behaviour]

    def for_key(self, key: str) -> Behaviour:
        """Return the behaviour that applies to requests made with this API key."""
        return self.keys.get(key, self.default)

    def to_json(self) -> dict[str, Any]:
        """Return the configuration as the effective behaviour of the default and each key."""
        return {
            "default": dataclasses.asdict(self.default),
            "keys": {key: dataclasses.asdict(value) for key, value in self.keys.items()},
        }


@dataclasses.dataclass(frozen=True)
class Call:
    """One API call that passed the checks every method shares, as its method's handler sees it."""

    key: str
    # The model id in the path; None for GET /v1beta/models.
    model: str | None
    params: dict[str, list[str]]
    # The decoded JSON body: an object for POST methods, None for GET ones.
    body: Any
    behaviour: Behaviour
    # A streamGenerateContent without alt=sse: Gemini's JSON array instead of SSE.
    array: bool


@dataclasses.dataclass
class StreamStats:
    """Counts of streams (SSE or JSON array): being sent, started, left, cut, stalled, errored."""

    open: int = 0
    opened: int = 0
    closed_early: int = 0
    cut: int = 0
    stalled: int = 0
    errored: int = 0


def gemini_error(code: int, message: str | None = None) -> dict[str, Any]:
    """Return a Gemini-shaped error body for an HTTP status."""
    status, default_message = ERROR_STATUSES.get(code, UNKNOWN_ERROR_STATUS)
    return {"error": {"code": int(code), "message": message or default_message, "status": status}}


def fault_error(
    name: str, *, key: str, model: str, retry_delay: float | None = None
) -> dict[str, Any]:
    """Return the body Gemini sends for a FAULTS name, quoting the key and model where it does."""
    code = FAULTS[name]
    details: list[dict[str, Any]]
    if name in QUOTA_LIMITS:
        message = QUOTA_MESSAGE
        details = _quota_details(model, *QUOTA_LIMITS[name], retry_delay)
    elif name == "invalid_key":
        message = INVALID_KEY_MESSAGE
        localized = {"locale": MESSAGE_LOCALE, "message": INVALID_KEY_MESSAGE}
        details = [
            _error_info(INVALID_KEY_REASON, {"service": GEMINI_SERVICE}),
            {"@type": RPC_TYPE_PREFIX + "LocalizedMessage", **localized},
        ]
    elif name == "forbidden":
        message = SUSPENDED_MESSAGE.format(key=key)
        metadata = {"consumer": SUSPENDED_CONSUMER, "service": GEMINI_SERVICE}
        details = [_error_info(SUSPENDED_REASON, metadata)]
    else:
        return gemini_error(code)
    error = gemini_error(code, message)
    error["error"]["details"] = details
    return error


def format_duration(seconds: float) -> str:
    """Write seconds as Gemini writes a protobuf Duration: "34s", "0.5s", "34.4s"."""
    return f"{seconds:.{DURATION_DIGITS}f}".rstrip("0").rstrip(".") + "s"


def stream_error(behaviour: Behaviour) -> dict[str, Any] | None:
    """Return the error that ends a stream after error_event_after events, or None."""
    if behaviour.error_event_after is None or behaviour.block_reason is not None:
        return None
    if behaviour.error_body is None:
        return gemini_error(HTTPStatus.SERVICE_UNAVAILABLE)
    # A copy: stamping the event must not write into the configured body.
    return dict(behaviour.error_body)


def count_prompt_tokens(body: Any) -> int:
    """Count one token per word in the text parts of a request's contents (at least 1)."""
    contents = body.get("contents") if isinstance(body, dict) else None
    words = 0
    for content in contents if isinstance(contents, list) else []:
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                words += len(part["text"].split())
    return max(words, 1)


def sse_events(
    behaviour: Behaviour | None = None,
    *,
    model: str = DEFAULT_MODEL,
    prompt_tokens: int = 1,
    response_id: str = DEFAULT_RESPONSE_ID,
) -> Iterator[dict[str, Any]]:
    """Yield the events of one streamed answer, without pacing, cuts or timestamps."""
    behaviour = behaviour or Behaviour()
    yield from _answer_events(
        behaviour, model=model, prompt_tokens=prompt_tokens, response_id=response_id
    )
    error = stream_error(behaviour)
    if error is not None:
        yield error


def frame_event(event: dict[str, Any]) -> bytes:
    """Encode one event as Gemini does: compact UTF-8 JSON after `data: `, then CRLF CRLF."""
    return EVENT_PREFIX + _dumps(event) + EVENT_END


def frame_bare_error(error: dict[str, Any]) -> bytes:
    """Encode an error as Gemini sometimes ends a broken stream: indented JSON, not an event."""
    return _pretty(error)


def frame_array_element(event: dict[str, Any], index: int) -> bytes:
    """Encode event number `index` (from 0) of a JSON-array stream: `[` or `\\n,\\r\\n`, then it."""
    return (ARRAY_OPEN if index == 0 else ARRAY_SEPARATOR) + _dumps(event)


def frame_array_error(error: dict[str, Any], *, pretty: bool = False) -> bytes:
    """Encode an HTTP error as Gemini answers a JSON-array stream: a one-element array."""
    return ARRAY_OPEN + (_pretty(error).rstrip(b"\n") if pretty else _dumps(error)) + ARRAY_CLOSE


def merge_events(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Merge a stream's events into generateContent's one answer, as Gemini does.

    Consecutive text parts of the same kind (answer or thought) join into one part; other parts
    (parts_extra) follow as they came. The last event's usage, feedback and finishReason win.
    """
    merged: dict[str, Any] = {}
    parts: list[dict[str, Any]] = []
    finish_reason = None
    answered = False
    for event in events:
        for candidate in event.get("candidates") or ():
            answered = True
            finish_reason = candidate.get("finishReason", finish_reason)
            for part in candidate.get("content", {}).get("parts") or ():
                if parts and _joins(parts[-1], part):
                    parts[-1]["text"] += part["text"]
                else:
                    parts.append(dict(part))
        merged.update({name: value for name, value in event.items() if name != "candidates"})
    if not answered:
        return merged
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if finish_reason is not None:
        candidate["finishReason"] = finish_reason
    candidate["index"] = 0
    return {"candidates": [candidate], **merged}


def model_info(model: str) -> dict[str, Any] | None:
    """Return Gemini's description of a listed model id, or None for an unknown one."""
    if model not in MODELS:
        return None
    display_name, description = MODELS[model]
    return {
        "name": f"models/{model}",
        "version": MODEL_VERSION,
        "displayName": display_name,
        "description": description,
        "inputTokenLimit": MODEL_INPUT_TOKEN_LIMIT,
        "outputTokenLimit": MODEL_OUTPUT_TOKEN_LIMIT,
        "supportedGenerationMethods": list(MODEL_GENERATION_METHODS),
        "temperature": MODEL_TEMPERATURE,
        "topP": MODEL_TOP_P,
        "topK": MODEL_TOP_K,
        "maxTemperature": MODEL_MAX_TEMPERATURE,
        "thinking": True,
    }


def list_models(query: dict[str, list[str]]) -> dict[str, Any]:
    """Return the page of GET /v1beta/models that pageSize and pageToken ask for.

    The page token is the position of the page's first model: opaque to clients, as Gemini's
    are. Raise ValueError, with Gemini's wording, for a malformed size or an unknown token.
    """
    size_text = query.get("pageSize", [""])[-1]
    token = query.get("pageToken", [""])[-1]
    if size_text and not size_text.isdecimal():
        raise ValueError(f"Invalid value at 'page_size' (TYPE_INT32), \"{size_text}\"")
    size = min(int(size_text or 0) or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if token and not (token.isdecimal() and int(token) < len(MODELS)):
        raise ValueError("Invalid page token.")
    start = int(token or 0)
    ids = list(MODELS)[start : start + size]
    page: dict[str, Any] = {"models": [model_info(model) for model in ids]}
    if start + size < len(MODELS):
        page["nextPageToken"] = str(start + size)
    return page


def api_method(method: str, path: str) -> tuple[str | None, str | None]:
    """Name the API method (e.g. models.generateContent) a request calls, and the model in it.

    The method is None for a path or HTTP verb the simulator does not serve; the model is the
    id in the path whenever there is one, so that the request log shows it even then.
    """
    if path == MODELS_PATH:
        return (LIST_MODELS_METHOD if method == "GET" else None), None
    match = MODEL_PATH.fullmatch(path)
    if match is None:
        return None, None
    if match["method"] is None:
        return (GET_MODEL_METHOD if method == "GET" else None), match["model"]
    name = f"models.{match['method']}"
    return (name if method == "POST" and name in MODEL_METHODS else None), match["model"]


def parse_config(payload: Any, base: Behaviour) -> SimulatorConfig:
    """Validate a `PUT /_sim/behaviour` body; its fields override `base`. Raise ConfigError."""
    if not isinstance(payload, dict):
        raise ConfigError("the body must be a JSON object")
    unknown = sorted(set(payload) - {"default", "keys"})
    if unknown:
        raise ConfigError(f"unknown top-level field(s): {', '.join(unknown)}")
    default = dataclasses.replace(base, **checked_fields(payload.get("default", {}), "default"))
    keys = payload.get("keys", {})
    if not isinstance(keys, dict):
        raise ConfigError("keys must be an object of API key to behaviour fields")
    return SimulatorConfig(
        default=checked_behaviour(default, "default"),
        keys={
            key: checked_behaviour(
                dataclasses.replace(default, **checked_fields(fields, f"keys.{key}")), f"keys.{key}"
            )
            for key, fields in keys.items()
        },
    )


def checked_fields(fields: Any, where: str) -> dict[str, Any]:
    """Return behaviour fields after checking names, types and ranges; raise ConfigError."""
    if not isinstance(fields, dict):
        raise ConfigError(f"{where} must be an object of behaviour fields")
    unknown = sorted(set(fields) - set(BEHAVIOUR_FIELDS))
    if unknown:
        raise ConfigError(f"unknown behaviour field(s) in {where}: {', '.join(unknown)}")
    for name, value in fields.items():
        hint = BEHAVIOUR_FIELDS[name]
        if not _matches_type(value, hint):
            raise ConfigError(f"{where}.{name} must be {_type_name(hint)}, not {json.dumps(value)}")
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{where}.{name} must not be negative")
        if name == "status" and value is not None and not MIN_STATUS <= value <= MAX_STATUS:
            raise ConfigError(f"{where}.status must be between {MIN_STATUS} and {MAX_STATUS}")
        if name == "fault" and value is not None and value not in FAULTS:
            raise ConfigError(
                f"{where}.fault must be one of {', '.join(FAULTS)}, not {json.dumps(value)}"
            )
    return fields


def checked_behaviour(behaviour: Behaviour, where: str) -> Behaviour:
    """Return a resolved behaviour whose fields do not contradict each other; raise ConfigError."""
    if behaviour.fault is not None and behaviour.status is not None:
        # Each picks the HTTP status; refusing beats silently preferring one of them.
        raise ConfigError(f"{where} sets both fault and status; set one of them to null")
    return behaviour


class SimulatorApp:
    """The WSGI application: Gemini's API methods plus the `/_sim/` control API."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.base = behaviour
        self.config = SimulatorConfig(default=behaviour, keys={})
        self.requests: deque[dict[str, Any]] = deque(maxlen=MAX_LOGGED_REQUESTS)
        self.stats = StreamStats()
        self._control_routes: dict[tuple[str, str], ControlHandler] = {
            ("GET", "/_sim/health"): lambda _body: (HTTPStatus.OK, {"status": "ok"}),
            ("GET", "/_sim/behaviour"): lambda _body: (HTTPStatus.OK, self.config.to_json()),
            ("PUT", "/_sim/behaviour"): self._put_behaviour,
            ("GET", "/_sim/requests"): lambda _body: (
                HTTPStatus.OK,
                {"requests": list(self.requests)},
            ),
            ("DELETE", "/_sim/requests"): self._clear_requests,
            ("GET", "/_sim/streams"): lambda _body: (
                HTTPStatus.OK,
                dataclasses.asdict(self.stats),
            ),
        }
        self._api_methods: dict[str, ApiHandler] = {
            STREAM_METHOD: self._stream,
            GENERATE_METHOD: self._generate_content,
            COUNT_TOKENS_METHOD: self._count_tokens,
            LIST_MODELS_METHOD: self._list_models,
            GET_MODEL_METHOD: self._get_model,
        }

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one HTTP request."""
        if environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
            return self._control(environ, start_response)
        return self._api(environ, start_response)

    def _api(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        key = environ.get(API_KEY_ENVIRON) or None
        name, model = api_method(method, path)
        raw_body = environ["wsgi.input"].read()
        body = _loads(raw_body)
        self.requests.append(
            {
                "key": key,
                "model": model,
                "path": path,
                "query": query,
                "body": body,
                # Lets a test prove a proxy forwarded the bytes unchanged, not just equal JSON.
                "body_sha256": hashlib.sha256(raw_body).hexdigest(),
                "time": time.time(),
                # The client's TCP port tells tests whether it reused a pooled connection.
                "remote_port": environ.get("REMOTE_PORT"),
            }
        )
        if name is None:
            message = f"{method} {path} is not a Gemini API endpoint of the simulator."
            error = gemini_error(HTTPStatus.NOT_FOUND, message)
            return _json_response(start_response, HTTPStatus.NOT_FOUND, error)
        params = parse_qs(query)
        alt = params.get("alt", [JSON_ALT])[-1]
        # Without alt=sse a stream is Gemini's JSON array, and its errors come wrapped in one too.
        array = name == STREAM_METHOD and alt != SSE_ALT
        fail = functools.partial(_json_response, start_response, array=array)
        if key is None:
            return fail(
                HTTPStatus.FORBIDDEN,
                gemini_error(HTTPStatus.FORBIDDEN, UNREGISTERED_CALLER_MESSAGE),
            )
        behaviour = self.config.for_key(key)
        gevent.sleep(behaviour.hang_before_headers)
        if method == "POST" and not isinstance(body, dict):
            error = gemini_error(HTTPStatus.BAD_REQUEST, "Invalid JSON payload received.")
            return fail(HTTPStatus.BAD_REQUEST, error)
        if array and alt != JSON_ALT:
            message = f"Invalid value at 'alt' (type.googleapis.com/system.Alt), \"{alt}\""
            return fail(HTTPStatus.BAD_REQUEST, gemini_error(HTTPStatus.BAD_REQUEST, message))
        headers = (
            [] if behaviour.retry_after is None else [("Retry-After", str(behaviour.retry_after))]
        )
        if behaviour.fault is not None:
            error = fault_error(
                behaviour.fault,
                key=key,
                model=model or DEFAULT_MODEL,
                retry_delay=behaviour.retry_delay,
            )
            return fail(FAULTS[behaviour.fault], error, headers, pretty=True)
        if behaviour.status is not None and behaviour.status != HTTPStatus.OK:
            error = behaviour.error_body or gemini_error(behaviour.status)
            return fail(behaviour.status, error, headers)
        call = Call(
            key=key, model=model, params=params, body=body, behaviour=behaviour, array=array
        )
        return self._api_methods[name](call, start_response)

    def _stream(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        behaviour, array = call.behaviour, call.array
        content_type = JSON_CONTENT_TYPE if array else SSE_CONTENT_TYPE
        write = start_response(_status_line(HTTPStatus.OK), [("Content-Type", content_type)])
        # pywsgi holds headers back until the first body bytes; send them now, as Gemini does,
        # so that first_delay measures time to first event rather than time to headers.
        write(b"")
        if behaviour.raw_body is not None:
            return [behaviour.raw_body.encode()]
        events = self._answer(call)
        return _EventStream(events, stream_error(behaviour), behaviour, self.stats, array=array)

    def _generate_content(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        gevent.sleep(call.behaviour.first_delay)
        error = stream_error(call.behaviour)
        if error is not None:
            # With no stream to break off, a failure mid-answer fails the whole call instead.
            return _json_response(start_response, _error_code(error), error)
        return _json_response(start_response, HTTPStatus.OK, merge_events(self._answer(call)))

    def _count_tokens(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        tokens = {"totalTokens": count_prompt_tokens(call.body)}
        return _json_response(start_response, HTTPStatus.OK, tokens)

    def _list_models(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        try:
            page = list_models(call.params)
        except ValueError as problem:
            error = gemini_error(HTTPStatus.BAD_REQUEST, str(problem))
            return _json_response(start_response, HTTPStatus.BAD_REQUEST, error)
        return _json_response(start_response, HTTPStatus.OK, page)

    def _get_model(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        info = model_info(call.model or "")
        if info is None:
            message = f"models/{call.model} is not found for API version v1beta."
            error = gemini_error(HTTPStatus.NOT_FOUND, message)
            return _json_response(start_response, HTTPStatus.NOT_FOUND, error)
        return _json_response(start_response, HTTPStatus.OK, info)

    def _answer(self, call: Call) -> Iterator[dict[str, Any]]:
        return _answer_events(
            call.behaviour,
            model=call.model or DEFAULT_MODEL,
            prompt_tokens=count_prompt_tokens(call.body),
            response_id=secrets.token_urlsafe(RESPONSE_ID_BYTES),
        )

    def _control(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        if not _is_loopback(environ.get("REMOTE_ADDR", "")):
            error = gemini_error(HTTPStatus.FORBIDDEN, "The control API is for loopback clients.")
            return _json_response(start_response, HTTPStatus.FORBIDDEN, error)
        handler = self._control_routes.get((method, path))
        if handler is None:
            error = gemini_error(HTTPStatus.NOT_FOUND, f"No control endpoint {method} {path}.")
            return _json_response(start_response, HTTPStatus.NOT_FOUND, error)
        status, payload = handler(environ["wsgi.input"].read())
        return _json_response(start_response, status, payload)

    def _put_behaviour(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            self.config = parse_config(_loads(body), self.base)
        except ConfigError as error:
            return HTTPStatus.BAD_REQUEST, gemini_error(HTTPStatus.BAD_REQUEST, str(error))
        return HTTPStatus.OK, self.config.to_json()

    def _clear_requests(self, _body: bytes) -> tuple[int, dict[str, Any]]:
        cleared = len(self.requests)
        self.requests.clear()
        return HTTPStatus.OK, {"cleared": cleared}


class _EventStream:
    """The body of a 200 answer: paces, stalls and cuts events, and records how it ended."""

    def __init__(
        self,
        events: Iterator[dict[str, Any]],
        error: dict[str, Any] | None,
        behaviour: Behaviour,
        stats: StreamStats,
        *,
        array: bool = False,
    ) -> None:
        self._events = events
        # Sent after the events; held apart because error_bare frames it differently.
        self._error = error
        self._behaviour = behaviour
        self._stats = stats
        # Gemini's JSON array instead of SSE; `]` is owed until a clean end has written it.
        self._array = self._closing = array
        self._sent = 0
        self._stalled = False
        self._ended = False
        self._closed = False
        stats.open += 1
        stats.opened += 1

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._sent == self._behaviour.stall_after and not self._stalled:
            self._stalled = True
            self._stats.stalled += 1
            # The socket stays open and silent; gevent.sleep lets every other stream go on.
            gevent.sleep(self._behaviour.stall_seconds)
        cut_after = self._behaviour.cut_after
        cutting = cut_after is not None and self._sent >= cut_after
        event = None if cutting else next(self._events, None)
        is_error = event is None and not cutting and self._error is not None
        if is_error:
            event, self._error = self._error, None
        if event is None and cut_after is None:
            self._ended = True
            if not self._closing:
                raise StopIteration
            self._closing = False
            return ARRAY_CLOSE if self._sent else EMPTY_ARRAY
        gevent.sleep(self._behaviour.first_delay if self._sent == 0 else self._behaviour.delay)
        if event is None:
            self._ended = True
            self._stats.cut += 1
            # pywsgi treats ECONNRESET from the body as a vanished client: it closes the socket
            # without logging and without the terminating zero-length chunk, so the client sees
            # a chunked body that breaks off, exactly like a dropped upstream connection.
            raise ConnectionResetError(errno.ECONNRESET, "simulated connection cut")
        if self._behaviour.stamp:
            event["simSentAt"] = sent_at = time.time()
            _stamp_text(event, sent_at)
        self._sent += 1
        if is_error:
            self._stats.errored += 1
        if self._array:
            # The array has no bare form: an error is just its last element.
            return frame_array_element(event, self._sent - 1)
        if is_error and self._behaviour.error_bare:
            return frame_bare_error(event)
        return frame_event(event)

    def close(self) -> None:
        """Called by the server when the stream is over; unfinished means the client left."""
        if self._closed:
            return
        self._closed = True
        self._stats.open -= 1
        if not self._ended:
            self._stats.closed_early += 1


def _stamp_text(event: dict[str, Any], sent_at: float) -> None:
    """End the event's answer text with `@<send time>`, so it survives into a proxy's chunks.

    The proxy keeps only the text; a benchmark reads the last stamp in a chunk's content as the
    send time of the event that completed the chunk.
    """
    for candidate in event.get("candidates") or ():
        parts = candidate.get("content", {}).get("parts") or []
        texts = [part for part in parts if "text" in part and not part.get("thought")]
        if texts:
            texts[-1]["text"] += f" {STAMP_MARK}{sent_at:.6f}"


def make_app(behaviour: Behaviour | None = None) -> SimulatorApp:
    """Build the simulator's WSGI application with `behaviour` as its default."""
    return SimulatorApp(behaviour or Behaviour())


def main(argv: list[str] | None = None) -> None:
    """Run the simulator until SIGTERM or SIGINT."""
    args = _parse_args(argv)
    _raise_open_file_limit()
    server = WSGIServer(
        (args.host, args.port),
        make_app(args.behaviour),
        backlog=LISTEN_BACKLOG,
        log=sys.stderr if args.access_log else None,
    )
    server.start()
    # Closing the listener ends serve_forever; open streams die with the process.
    handlers = [gevent.signal_handler(signum, server.close) for signum in STOP_SIGNALS]
    _announce("simulator_listening", host=server.server_host, port=server.server_port)
    server.serve_forever()
    for handler in handlers:
        handler.cancel()
    _announce("simulator_stopped")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port; 0 picks a free one")
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="answer events")
    parser.add_argument("--delay", type=float, default=DEFAULT_DELAY, help="seconds between events")
    parser.add_argument("--first-delay", type=float, default=0.0, help="seconds before event 1")
    parser.add_argument(
        "--words-per-event", type=int, default=DEFAULT_WORDS_PER_EVENT, help="1 word = 1 token"
    )
    parser.add_argument("--thought-events", type=int, default=0, help="thought events first")
    parser.add_argument(
        "--stamp",
        action="store_true",
        help="add the send time to every event (simSentAt, and @time in the text)",
    )
    parser.add_argument("--access-log", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)
    fields = {
        "events": args.events,
        "delay": args.delay,
        "first_delay": args.first_delay,
        "words_per_event": args.words_per_event,
        "thought_events": args.thought_events,
        "stamp": args.stamp,
    }
    try:
        args.behaviour = Behaviour(**checked_fields(fields, "options"))
    except ConfigError as error:
        parser.error(str(error))
    return args


def _raise_open_file_limit() -> None:
    """Lift the soft open-file limit to the hard one, so thousands of streams fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Some systems (macOS) refuse an unlimited soft limit; the default limit still works.
    with contextlib.suppress(ValueError, OSError):
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _announce(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _word_pieces(words: tuple[str, ...], count: int, per_piece: int) -> list[str]:
    pieces = [
        " ".join(words[(index * per_piece + offset) % len(words)] for offset in range(per_piece))
        for index in range(count)
    ]
    # Like Gemini's chunks, every piece but the first brings its own leading space.
    return [piece if index == 0 else " " + piece for index, piece in enumerate(pieces)]


def _answer_events(
    behaviour: Behaviour, *, model: str, prompt_tokens: int, response_id: str
) -> Iterator[dict[str, Any]]:
    envelope = {"modelVersion": model, "responseId": response_id}
    if behaviour.block_reason is not None:
        usage = {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens}
        feedback = {"blockReason": behaviour.block_reason}
        yield {"promptFeedback": feedback, "usageMetadata": usage, **envelope}
        return
    thoughts = _word_pieces(THOUGHT_WORDS, behaviour.thought_events, behaviour.words_per_event)
    steps = [(True, text) for text in thoughts] + [(False, text) for text in _answer(behaviour)]
    sent = steps if behaviour.error_event_after is None else steps[: behaviour.error_event_after]
    thought_tokens = answer_tokens = 0
    for index, (is_thought, text) in enumerate(sent):
        is_last = index == len(steps) - 1
        if is_thought:
            thought_tokens += len(text.split())
            parts = [{"text": text, "thought": True}]
        else:
            answer_tokens += len(text.split())
            parts = [{"text": text}]
        if is_last and behaviour.parts_extra:
            parts += behaviour.parts_extra
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if is_last and behaviour.finish_reason is not None:
            candidate["finishReason"] = behaviour.finish_reason
        candidate["index"] = 0
        usage = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": answer_tokens,
            "totalTokenCount": prompt_tokens + answer_tokens + thought_tokens,
        }
        if behaviour.thought_events:
            usage["thoughtsTokenCount"] = thought_tokens
        yield {"candidates": [candidate], "usageMetadata": usage, **envelope}


def _quota_details(
    model: str, quota_id: str, quota_value: str, retry_delay: float | None
) -> list[dict[str, Any]]:
    violation = {
        "quotaMetric": QUOTA_METRIC,
        "quotaId": quota_id,
        "quotaDimensions": {"location": QUOTA_LOCATION, "model": model},
        "quotaValue": quota_value,
    }
    details: list[dict[str, Any]] = [
        {"@type": RPC_TYPE_PREFIX + "QuotaFailure", "violations": [violation]},
        {
            "@type": RPC_TYPE_PREFIX + "Help",
            "links": [{"description": QUOTA_HELP, "url": RATE_LIMITS_URL}],
        },
    ]
    if retry_delay is not None:
        retry = {"@type": RPC_TYPE_PREFIX + "RetryInfo", "retryDelay": format_duration(retry_delay)}
        details.append(retry)
    return details


def _error_info(reason: str, metadata: dict[str, str]) -> dict[str, Any]:
    return {
        "@type": RPC_TYPE_PREFIX + "ErrorInfo",
        "reason": reason,
        "domain": ERROR_DOMAIN,
        "metadata": metadata,
    }


def _answer(behaviour: Behaviour) -> list[str]:
    if behaviour.text is None:
        return _word_pieces(ANSWER_WORDS, behaviour.events, behaviour.words_per_event)
    return _split_text(behaviour.text, behaviour.events)


def _split_text(text: str, count: int) -> list[str]:
    """Split text at word starts into `count` pieces that join back to exactly `text`."""
    if count == 0:
        return []
    words = re.findall(r"\s*\S+", text)
    pieces = [
        "".join(words[index * len(words) // count : (index + 1) * len(words) // count])
        for index in range(count)
    ]
    pieces[-1] += text[len("".join(words)) :]
    return pieces


def _matches_type(value: Any, hint: Any) -> bool:
    """Tell whether a decoded JSON value fits a Behaviour field's annotation."""
    if isinstance(hint, types.UnionType):
        return any(_matches_type(value, arg) for arg in typing.get_args(hint))
    origin = typing.get_origin(hint) or hint
    if isinstance(value, bool) or origin is bool:
        # bool is an int subclass, but `true` is no event count and `1` no flag.
        return isinstance(value, bool) and origin is bool
    if origin is float:
        return isinstance(value, int | float)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches_type(each, item) for each in value)
    return isinstance(value, origin)


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=JSON_SEPARATORS, ensure_ascii=False).encode()


def _pretty(value: Any) -> bytes:
    return json.dumps(value, indent=PRETTY_INDENT, ensure_ascii=False).encode() + b"\n"


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _status_line(code: int) -> str:
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "Unknown"
    return f"{code} {phrase}"


def _error_code(error: dict[str, Any]) -> int:
    """The HTTP error status an error body names, or 500 when it names none."""
    fields = error.get("error")
    code = fields.get("code") if isinstance(fields, dict) else None
    if isinstance(code, int) and HTTPStatus.BAD_REQUEST <= code <= MAX_STATUS:
        return code
    return HTTPStatus.INTERNAL_SERVER_ERROR


def _joins(earlier: dict[str, Any], part: dict[str, Any]) -> bool:
    """Tell whether `part` continues the text of `earlier`: both plain text of the same kind."""
    plain = all(
        isinstance(each.get("text"), str) and set(each) <= {"text", "thought"}
        for each in (earlier, part)
    )
    return plain and earlier.get("thought") == part.get("thought")


def _json_response(
    start_response: StartResponse,
    status: int,
    payload: dict[str, Any],
    extra_headers: Iterable[tuple[str, str]] = (),
    *,
    pretty: bool = False,
    array: bool = False,
) -> list[bytes]:
    if array:
        data = frame_array_error(payload, pretty=pretty)
    else:
        data = _pretty(payload) if pretty else _dumps(payload)
    headers = [("Content-Type", JSON_CONTENT_TYPE), ("Content-Length", str(len(data)))]
    start_response(_status_line(status), [*headers, *extra_headers])
    return [data]


if __name__ == "__main__":
    main()
