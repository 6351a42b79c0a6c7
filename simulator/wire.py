"""Gemini's bytes on the wire: SSE events, the JSON-array stream, JSON bodies, and the SSE of
its OpenAI-compatible API.

Usage::

    body = b"".join(frame_event(event) for event in events)
"""

import json
from typing import Any

SSE_CONTENT_TYPE = "text/event-stream"
JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
EVENT_PREFIX = b"data: "
# Gemini separates events with CRLF CRLF, which clients must handle as well as LF LF.
EVENT_END = b"\r\n\r\n"
# On the OpenAI-compatible path, events end with LF LF and the stream with OpenAI's [DONE].
OPENAI_EVENT_END = b"\n\n"
OPENAI_DONE = EVENT_PREFIX + b"[DONE]" + OPENAI_EVENT_END
# Gemini's JSON-array stream: `[` and the first event, `\n,\r\n` before each next one, `\n]`.
ARRAY_OPEN = b"["
ARRAY_SEPARATOR = b"\n,\r\n"
ARRAY_CLOSE = b"\n]"
EMPTY_ARRAY = b"[]"
JSON_SEPARATORS = (",", ":")
# Google pretty-prints its JSON errors, both as HTTP bodies and when it ends a stream with one.
PRETTY_INDENT = 2


def frame_event(event: dict[str, Any]) -> bytes:
    """Encode one event as Gemini does: compact UTF-8 JSON after `data: `, then CRLF CRLF."""
    return EVENT_PREFIX + compact_json(event) + EVENT_END


def frame_openai_event(event: dict[str, Any]) -> bytes:
    """Encode one event of the OpenAI-compatible stream: `data: ` + compact JSON + LF LF."""
    return EVENT_PREFIX + compact_json(event) + OPENAI_EVENT_END


def frame_bare_error(error: dict[str, Any]) -> bytes:
    """Encode an error as Gemini sometimes ends a broken stream: indented JSON, not an event."""
    return pretty_json(error)


def frame_array_element(event: dict[str, Any], index: int) -> bytes:
    """Encode event number `index` (from 0) of a JSON-array stream: `[` or `\\n,\\r\\n`, then it."""
    return (ARRAY_OPEN if index == 0 else ARRAY_SEPARATOR) + compact_json(event)


def frame_array_error(error: dict[str, Any], *, pretty: bool = False) -> bytes:
    """Encode an HTTP error as Gemini answers a JSON-array stream: a one-element array."""
    element = pretty_json(error).rstrip(b"\n") if pretty else compact_json(error)
    return ARRAY_OPEN + element + ARRAY_CLOSE


def compact_json(value: Any) -> bytes:
    """Encode a value as Gemini's compact JSON: no spaces, raw UTF-8."""
    return json.dumps(value, separators=JSON_SEPARATORS, ensure_ascii=False).encode()


def pretty_json(value: Any) -> bytes:
    """Encode a value as Google's pretty-printed JSON, ending with a newline."""
    return json.dumps(value, indent=PRETTY_INDENT, ensure_ascii=False).encode() + b"\n"
