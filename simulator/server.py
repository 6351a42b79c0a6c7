"""The simulator's WSGI application: Gemini's native and OpenAI-compatible API methods, and the
loopback-only /_sim/ control API.

Usage::

    app = make_app(Behaviour(events=3))  # on gevent's WSGIServer, as __main__.py serves it
"""

import dataclasses
import functools
import hashlib
import ipaddress
import json
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import parse_qs

import gevent

from simulator.answers import answer_events, count_prompt_tokens, merge_events, stream_error
from simulator.behaviour import Behaviour, ConfigError, SimulatorConfig, parse_config
from simulator.embeddings import batch_embed_contents, embed_content
from simulator.errors import FAULTS, error_code, fault_error, gemini_error
from simulator.models import DEFAULT_MODEL, list_models, model_info
from simulator.openai import (
    bare_model,
    chat_chunks,
    chat_completion,
    check_chat_request,
    embedding_list,
    message_tokens,
    model_list,
    model_object,
)
from simulator.stream import (
    ARRAY_FRAMING,
    OPENAI_FRAMING,
    SSE_FRAMING,
    EventStream,
    Framing,
    StreamStats,
)
from simulator.wire import (
    JSON_CONTENT_TYPE,
    SSE_CONTENT_TYPE,
    compact_json,
    frame_array_error,
    pretty_json,
)

RESPONSE_ID_BYTES = 16
MAX_LOGGED_REQUESTS = 10_000
# Gemini serves its native API under both versions, alike; the simulator answers both the same.
MODELS_PATH = re.compile(r"/(?P<version>v1|v1beta)/models")
# A model's own path, or one of its methods after the colon (`models/x:generateContent`).
MODEL_PATH = re.compile(
    r"/(?P<version>v1|v1beta)/models/(?P<model>[A-Za-z0-9._-]+)(?::(?P<method>[A-Za-z]+))?"
)
# Gemini's OpenAI-compatible API: v1beta only, and its errors come wrapped in a JSON array.
OPENAI_PREFIX = "/v1beta/openai/"
OPENAI_VERSION = "v1beta"
# An OpenAI model id may keep Gemini's `models/` prefix: models/models/x is models/x.
OPENAI_MODEL_PATH = re.compile(r"/v1beta/openai/models/(?:models/)?(?P<model>[A-Za-z0-9._-]+)")
# The API methods served, named as in Google's discovery document.
STREAM_METHOD = "models.streamGenerateContent"
GENERATE_METHOD = "models.generateContent"
COUNT_TOKENS_METHOD = "models.countTokens"
EMBED_METHOD = "models.embedContent"
BATCH_EMBED_METHOD = "models.batchEmbedContents"
LIST_MODELS_METHOD = "models.list"
GET_MODEL_METHOD = "models.get"
# The ones called with POST on `models/{model}:{method}`; `models/x:get` is none of them.
MODEL_METHODS = frozenset(
    {STREAM_METHOD, GENERATE_METHOD, COUNT_TOKENS_METHOD, EMBED_METHOD, BATCH_EMBED_METHOD}
)
# The OpenAI-compatible methods, by HTTP verb and path (the model of models.retrieve apart).
CHAT_METHOD = "openai.chat.completions"
EMBEDDINGS_METHOD = "openai.embeddings"
OPENAI_LIST_METHOD = "openai.models.list"
OPENAI_GET_METHOD = "openai.models.retrieve"
OPENAI_METHODS = {
    ("POST", OPENAI_PREFIX + "chat/completions"): CHAT_METHOD,
    ("POST", OPENAI_PREFIX + "embeddings"): EMBEDDINGS_METHOD,
    ("GET", OPENAI_PREFIX + "models"): OPENAI_LIST_METHOD,
}
CONTROL_PREFIX = "/_sim/"
API_KEY_ENVIRON = "HTTP_X_GOOG_API_KEY"
AUTHORIZATION_ENVIRON = "HTTP_AUTHORIZATION"
BEARER_PREFIX = "Bearer "
SSE_ALT = "sse"
# Gemini's default for a stream: one JSON array, written element by element as events arrive.
JSON_ALT = "json"
UNREGISTERED_CALLER_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
# What the OpenAI-compatible path says without a Bearer key (OpenAI's SDKs read 401 as auth).
MISSING_BEARER_MESSAGE = "Missing or invalid Authorization header."

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
ControlHandler = Callable[[bytes], tuple[int, dict[str, Any]]]
ApiHandler = Callable[["Call", StartResponse], Iterable[bytes]]


class ApiRoute(NamedTuple):
    """What a request calls: the API method (None if not served), the model, the API version."""

    method: str | None
    model: str | None = None
    version: str | None = None


@dataclasses.dataclass(frozen=True)
class Call:
    """One API call that passed the checks every method shares, as its method's handler sees it."""

    key: str
    # The model id in the path or, on the OpenAI path, the body's; None for model lists.
    model: str | None
    params: dict[str, list[str]]
    # The decoded JSON body: an object for POST methods, None for GET ones.
    body: Any
    behaviour: Behaviour
    # A streamGenerateContent without alt=sse: Gemini's JSON array instead of SSE.
    array: bool
    version: str


def api_method(method: str, path: str) -> ApiRoute:
    """Name the API method (e.g. models.generateContent) a request calls, its model and version.

    The method is None for a path or HTTP verb the simulator does not serve; the model is the
    id in the path whenever there is one, so that the request log shows it even then. On the
    OpenAI path the model of a POST is in its body, not here.
    """
    if path.startswith(OPENAI_PREFIX):
        return _openai_method(method, path)
    if match := MODELS_PATH.fullmatch(path):
        return ApiRoute(LIST_MODELS_METHOD if method == "GET" else None, None, match["version"])
    match = MODEL_PATH.fullmatch(path)
    if match is None:
        return ApiRoute(None)
    model, version = match["model"], match["version"]
    if match["method"] is None:
        return ApiRoute(GET_MODEL_METHOD if method == "GET" else None, model, version)
    name = f"models.{match['method']}"
    return ApiRoute(name if method == "POST" and name in MODEL_METHODS else None, model, version)


def _openai_method(method: str, path: str) -> ApiRoute:
    if name := OPENAI_METHODS.get((method, path)):
        return ApiRoute(name, None, OPENAI_VERSION)
    match = OPENAI_MODEL_PATH.fullmatch(path)
    model = match["model"] if match else None
    served = model is not None and method == "GET"
    return ApiRoute(OPENAI_GET_METHOD if served else None, model, OPENAI_VERSION)


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
            EMBED_METHOD: functools.partial(self._embed, embed_content),
            BATCH_EMBED_METHOD: functools.partial(self._embed, batch_embed_contents),
            LIST_MODELS_METHOD: self._list_models,
            GET_MODEL_METHOD: functools.partial(self._describe_model, model_info, False),
            CHAT_METHOD: self._chat,
            EMBEDDINGS_METHOD: self._embeddings,
            OPENAI_LIST_METHOD: lambda _call, start: _json_response(
                start, HTTPStatus.OK, model_list()
            ),
            OPENAI_GET_METHOD: functools.partial(self._describe_model, model_object, True),
        }

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one HTTP request."""
        if environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
            return self._control(environ, start_response)
        return self._api(environ, start_response)

    def _api(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        openai = path.startswith(OPENAI_PREFIX)
        key = _bearer_key(environ) if openai else environ.get(API_KEY_ENVIRON) or None
        name, model, version = api_method(method, path)
        raw_body = environ["wsgi.input"].read()
        body = _loads(raw_body)
        if openai and model is None and isinstance(body, dict):
            model = bare_model(body.get("model"))
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
        params = parse_qs(query)
        alt = params.get("alt", [JSON_ALT])[-1]
        # Without alt=sse a stream is Gemini's JSON array, and its errors come wrapped in one too,
        # as all errors on the OpenAI-compatible path do.
        array = name == STREAM_METHOD and alt != SSE_ALT
        fail = functools.partial(_json_response, start_response, array=array or openai)
        if name is None:
            message = f"{method} {path} is not a Gemini API endpoint of the simulator."
            return fail(HTTPStatus.NOT_FOUND, gemini_error(HTTPStatus.NOT_FOUND, message))
        if key is None and openai:
            error = gemini_error(HTTPStatus.UNAUTHORIZED, MISSING_BEARER_MESSAGE)
            return fail(HTTPStatus.UNAUTHORIZED, error)
        if key is None:
            error = gemini_error(HTTPStatus.FORBIDDEN, UNREGISTERED_CALLER_MESSAGE)
            return fail(HTTPStatus.FORBIDDEN, error)
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
        if behaviour.fault is not None and behaviour.fault_model in (None, model):
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
            key=key,
            model=model,
            params=params,
            body=body,
            behaviour=behaviour,
            array=array,
            version=version or OPENAI_VERSION,
        )
        return self._api_methods[name](call, start_response)

    def _stream(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        if call.array:
            return self._send_stream(call, start_response, ARRAY_FRAMING, self._answer(call))
        return self._send_stream(call, start_response, SSE_FRAMING, self._answer(call))

    def _send_stream(
        self,
        call: Call,
        start_response: StartResponse,
        framing: Framing,
        events: Iterator[dict[str, Any]],
    ) -> Iterable[bytes]:
        behaviour = call.behaviour
        content_type = JSON_CONTENT_TYPE if framing is ARRAY_FRAMING else SSE_CONTENT_TYPE
        write = start_response(_status_line(HTTPStatus.OK), [("Content-Type", content_type)])
        # pywsgi holds headers back until the first body bytes; send them now, as Gemini does,
        # so that first_delay measures time to first event rather than time to headers.
        write(b"")
        if behaviour.raw_body is not None:
            return [behaviour.raw_body.encode()]
        return EventStream(events, stream_error(behaviour), behaviour, self.stats, framing)

    def _generate_content(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        error = self._whole_answer_error(call)
        if error is not None:
            return _json_response(start_response, error_code(error), error)
        return _json_response(start_response, HTTPStatus.OK, merge_events(self._answer(call)))

    def _whole_answer_error(self, call: Call) -> dict[str, Any] | None:
        """Wait first_delay, then return the error that fails a call with no stream, if any."""
        gevent.sleep(call.behaviour.first_delay)
        # With no stream to break off, a failure mid-answer fails the whole call instead.
        return stream_error(call.behaviour)

    def _count_tokens(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        tokens = {"totalTokens": count_prompt_tokens(call.body)}
        return _json_response(start_response, HTTPStatus.OK, tokens)

    def _list_models(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        return _json_answer(start_response, lambda: list_models(call.params))

    def _embed(
        self,
        answer: Callable[[dict[str, Any]], dict[str, Any]],
        call: Call,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        return _json_answer(start_response, lambda: answer(call.body))

    def _describe_model(
        self,
        describe: Callable[[str], dict[str, Any] | None],
        array: bool,
        call: Call,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        found = describe(call.model or "")
        if found is None:
            message = f"models/{call.model} is not found for API version {call.version}."
            error = gemini_error(HTTPStatus.NOT_FOUND, message)
            return _json_response(start_response, HTTPStatus.NOT_FOUND, error, array=array)
        return _json_response(start_response, HTTPStatus.OK, found)

    def _chat(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        try:
            check_chat_request(call.body)
        except ValueError as problem:
            return _bad_request(start_response, problem, array=True)
        shape = {
            "model": call.model or DEFAULT_MODEL,
            "created": int(time.time()),
            "tools": bool(call.body.get("tools")),
        }
        events = self._answer(call, message_tokens(call.body))
        if call.body.get("stream") is True:
            chunks = chat_chunks(events, **shape)
            return self._send_stream(call, start_response, OPENAI_FRAMING, chunks)
        error = self._whole_answer_error(call)
        if error is not None:
            return _json_response(start_response, error_code(error), error, array=True)
        return _json_response(start_response, HTTPStatus.OK, chat_completion(events, **shape))

    def _embeddings(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        return _json_answer(start_response, lambda: embedding_list(call.body), array=True)

    def _answer(self, call: Call, prompt_tokens: int | None = None) -> Iterator[dict[str, Any]]:
        return answer_events(
            call.behaviour,
            model=call.model or DEFAULT_MODEL,
            prompt_tokens=count_prompt_tokens(call.body)
            if prompt_tokens is None
            else prompt_tokens,
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


def make_app(behaviour: Behaviour | None = None) -> SimulatorApp:
    """Build the simulator's WSGI application with `behaviour` as its default."""
    return SimulatorApp(behaviour or Behaviour())


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
        data = pretty_json(payload) if pretty else compact_json(payload)
    headers = [("Content-Type", JSON_CONTENT_TYPE), ("Content-Length", str(len(data)))]
    start_response(_status_line(status), [*headers, *extra_headers])
    return [data]


def _bearer_key(environ: Environ) -> str | None:
    """The key an OpenAI client sends: `Authorization: Bearer <key>`; None without one."""
    authorization = environ.get(AUTHORIZATION_ENVIRON, "")
    key = authorization.removeprefix(BEARER_PREFIX).strip()
    return key if authorization.startswith(BEARER_PREFIX) and key else None


def _bad_request(
    start_response: StartResponse, problem: ValueError, *, array: bool = False
) -> list[bytes]:
    """Gemini's 400 for a request its method refused, worded by the ValueError."""
    error = gemini_error(HTTPStatus.BAD_REQUEST, str(problem))
    return _json_response(start_response, HTTPStatus.BAD_REQUEST, error, array=array)


def _json_answer(
    start_response: StartResponse, answer: Callable[[], dict[str, Any]], *, array: bool = False
) -> list[bytes]:
    """A 200 with what `answer` returns, or Gemini's 400 for the ValueError it raises."""
    try:
        payload = answer()
    except ValueError as problem:
        return _bad_request(start_response, problem, array=array)
    return _json_response(start_response, HTTPStatus.OK, payload)
