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
and ``GET /_sim/health`` says it is up. It is a test double, not part of the proxy: it imports
nothing from ``app``, and runs on gevent's WSGI server without monkey-patching, so one process
can hold thousands of concurrent streams.
"""

# What the tests and the benchmarks use; the modules behind these names are free to change.
from simulator.answers import ANSWER_WORDS, count_prompt_tokens, merge_events, sse_events
from simulator.behaviour import (
    DEFAULT_EVENTS,
    DEFAULT_WORDS_PER_EVENT,
    Behaviour,
    ConfigError,
    parse_config,
)
from simulator.errors import FAULTS, fault_error, format_duration
from simulator.models import list_models, model_info
from simulator.server import api_method, make_app
from simulator.wire import (
    EVENT_END,
    frame_array_element,
    frame_array_error,
    frame_bare_error,
    frame_event,
)

__all__ = [
    "ANSWER_WORDS",
    "DEFAULT_EVENTS",
    "DEFAULT_WORDS_PER_EVENT",
    "EVENT_END",
    "FAULTS",
    "Behaviour",
    "ConfigError",
    "api_method",
    "count_prompt_tokens",
    "fault_error",
    "format_duration",
    "frame_array_element",
    "frame_array_error",
    "frame_bare_error",
    "frame_event",
    "list_models",
    "make_app",
    "merge_events",
    "model_info",
    "parse_config",
    "sse_events",
]
