"""A local Gemini API: Gemini-shaped answers and model lists, with failures scripted per API key.

Usage: python -m simulator --host 127.0.0.1 --port 8090 [--events 12] [--delay 0.25]

It speaks Gemini's REST API well enough for Google's own SDKs (google-genai, @google/genai), under
both ``/v1`` and ``/v1beta`` alike: ``POST /v1beta/models/{model}:streamGenerateContent`` (SSE
with ``?alt=sse``, else Gemini's JSON array), ``:generateContent`` (the same answer as one
object), ``:countTokens``, ``:embedContent`` and ``:batchEmbedContents`` (deterministic vectors
made from the text), ``GET /v1beta/models`` (paged with pageSize and pageToken) and
``GET /v1beta/models/{model}``; every call needs an ``x-goog-api-key``. It also speaks Gemini's
OpenAI-compatible API for OpenAI's SDKs: ``POST /v1beta/openai/chat/completions`` (SSE chunks
ending in ``data: [DONE]`` with ``"stream": true``, else one chat.completion; tool calls),
``POST /v1beta/openai/embeddings``, ``GET /v1beta/openai/models[/{model}]``, with the key in
``Authorization: Bearer`` and errors wrapped in a one-element JSON array, as Gemini does there.
The scripted failures apply to every method of both APIs. It also serves loopback-only control
endpoints under ``/_sim/``: ``PUT /_sim/behaviour`` scripts the answers per key (pacing, cuts,
stalls, Gemini's own error bodies and broken stream endings), ``GET|DELETE /_sim/requests`` is
the log of received calls, ``GET /_sim/streams`` counts streams and ``GET /_sim/health`` says it
is up. It is a test double, not part of the proxy: it imports nothing from ``app``, and runs on
gevent's WSGI server without monkey-patching, so one process can hold thousands of concurrent
streams.
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
from simulator.embeddings import (
    DEFAULT_DIMENSIONS,
    batch_embed_contents,
    embed_content,
    embedding_values,
)
from simulator.errors import FAULTS, fault_error, format_duration
from simulator.models import list_models, model_ids, model_info
from simulator.openai import (
    chat_chunks,
    chat_completion,
    embedding_list,
    message_tokens,
    model_list,
    model_object,
)
from simulator.server import ApiRoute, api_method, make_app
from simulator.wire import (
    EVENT_END,
    OPENAI_DONE,
    frame_array_element,
    frame_array_error,
    frame_bare_error,
    frame_event,
    frame_openai_event,
)

__all__ = [
    "ANSWER_WORDS",
    "DEFAULT_DIMENSIONS",
    "DEFAULT_EVENTS",
    "DEFAULT_WORDS_PER_EVENT",
    "EVENT_END",
    "FAULTS",
    "OPENAI_DONE",
    "ApiRoute",
    "Behaviour",
    "ConfigError",
    "api_method",
    "batch_embed_contents",
    "chat_chunks",
    "chat_completion",
    "count_prompt_tokens",
    "embed_content",
    "embedding_list",
    "embedding_values",
    "fault_error",
    "format_duration",
    "frame_array_element",
    "frame_array_error",
    "frame_bare_error",
    "frame_event",
    "frame_openai_event",
    "list_models",
    "make_app",
    "merge_events",
    "message_tokens",
    "model_ids",
    "model_info",
    "model_list",
    "model_object",
    "parse_config",
    "sse_events",
]
