"""One upstream stream relayed as the client's body, chunk by chunk, in the chosen framing.

Usage::

    pieces = relay(upstream.iter_bytes(), Chunker(50), record, secrets=config.api_keys)
    first = next(pieces)  # raises UpstreamError if Gemini failed before the first chunk

The first chunk is the first byte of the body (in the JSON array, `[` goes out with it), so until
then nothing is committed and a failure can still become a proper HTTP error status. A failure
after that ends the body with one error element (app.formats says how each framing writes it),
so the body always parses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .chunker import Chunker
from .classify import classify
from .errors import error_body
from .formats import ARRAY, Framing
from .logs import LOGGER, Outcome, RequestRecord
from .redact import redact_json
from .sse import iter_events
from .upstream import UpstreamError

INCOMPLETE = "Gemini's stream ended before a finishReason: the answer is incomplete"
MALFORMED = "Gemini sent a malformed stream event"
INTERNAL = "the proxy failed while relaying the stream; see its log"
# A wait for the next keep-alive that is already due still gives the call a moment to answer.
MIN_WAIT = 0.01
# An error event's own code is trusted as an HTTP status only inside the error range.
ERROR_CODES = range(400, 600)


class KeepAlive:
    """When the client last got a byte, across all of a request's attempts.

    Usage::

        pulse = KeepAlive(15.0)
        if pulse.due():
            pulse.sent(); yield framing.keepalive
    """

    def __init__(self, interval: float, last: float | None = None) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self.interval = interval
        self.last = time.perf_counter() if last is None else last

    def due(self) -> bool:
        """Whether the client has had no byte for `interval` seconds."""
        return time.perf_counter() - self.last >= self.interval

    def wait(self) -> float:
        """Seconds until a keep-alive is due (never zero, so a wait on it always yields)."""
        return max(self.last + self.interval - time.perf_counter(), MIN_WAIT)

    def sent(self) -> None:
        """Note that a byte went to the client just now."""
        self.last = time.perf_counter()


class StreamIncomplete(UpstreamError):
    """Gemini's stream ended without a finishReason."""

    def __init__(self) -> None:
        super().__init__(502, error_body(502, INCOMPLETE), "incomplete")


def relay(
    byte_chunks: Iterable[bytes | None],
    chunker: Chunker,
    record: RequestRecord,
    secrets: Sequence[str] = (),
    pulse: KeepAlive | None = None,
    on_failure: Callable[[UpstreamError], UpstreamError] | None = None,
    framing: Framing = ARRAY,
    delta: bool = False,
) -> Iterator[bytes]:
    """Yield the pieces of the client's body; raise UpstreamError only before the first chunk.

    A None among `byte_chunks` (a silence upstream) becomes the framing's keep-alive, and so
    does an event that adds nothing for the client (a thought, tokens short of a chunk) once
    `pulse` says one is due. A failure after the first chunk is passed to `on_failure`, and
    what it returns is written as the body's error element. With `delta`, each chunk's content
    is only the text added since the chunk before.
    """
    opened = False
    pulse = pulse or KeepAlive(float("inf"))
    text_sent = 0
    try:
        for event in _events(byte_chunks):
            chunk = None if event is None else _feed(chunker, event)
            if chunk is None:
                if event is None or pulse.due():
                    pulse.sent()
                    yield framing.keepalive
                continue
            if delta:
                content = chunk["content"]
                chunk["content"], text_sent = content[text_sent:], len(content)
            piece = framing.chunk(encode(chunk), first=not opened, last=chunker.done)
            if not opened:
                opened = True
                record.mark_first_chunk()
            if chunker.done:
                record.outcome = "complete"
                yield piece
                return
            pulse.sent()
            yield piece
        raise StreamIncomplete()
    except Exception as failure:
        if not opened:
            raise
        if not isinstance(failure, UpstreamError):
            # A bug, not Gemini: logged with its traceback, reported to the client as INTERNAL,
            # and the array still closed so the body stays valid JSON.
            LOGGER.exception("stream failed", extra={"request_id": record.request_id})
            failure = UpstreamError(500, error_body(500, INTERNAL), "internal")
        elif on_failure is not None:
            failure = on_failure(failure)
        yield end_with_error(failure, chunker, record, secrets, opened=True, framing=framing)


def end_with_error(
    failure: UpstreamError,
    chunker: Chunker,
    record: RequestRecord,
    secrets: Sequence[str],
    opened: bool,
    framing: Framing = ARRAY,
) -> bytes:
    """Note the failure on `record`; return the bytes that end the body with its error element.

    `opened` says whether a chunk has gone out already (none has when only keep-alives did).
    """
    error = failure.body["error"]
    record.error = str(error.get("status", "UNKNOWN"))
    record.outcome = outcome_of(failure)
    element = {
        "error": {
            "code": failure.status,  # Gemini's own code when it is a valid error status
            "status": record.error,
            "message": str(error.get("message", "")),
        },
        "is_complete": False,
        "chunk_number": chunker.chunks_sent + 1,
    }
    # Gemini quotes the key in some messages ("Consumer 'api_key:...' suspended").
    return framing.error(encode(redact_json(element, secrets)), opened)


def outcome_of(failure: UpstreamError) -> Outcome:
    """A failed stream's outcome: incomplete when it just ended early, else upstream_error."""
    return "incomplete" if isinstance(failure, StreamIncomplete) else "upstream_error"


def encode(element: dict[str, Any]) -> bytes:
    """One array element as compact UTF-8 JSON."""
    return json.dumps(element, ensure_ascii=False, separators=(",", ":")).encode()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# NaN and Infinity, which Python's parser takes by default, would go on to the client as
# invalid JSON; one decoder for all events, since json.loads(..., **options) builds one per call.
EVENT_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _events(byte_chunks: Iterable[bytes | None]) -> Iterator[dict[str, Any] | None]:
    try:
        for data in iter_events(byte_chunks):
            if data is None:
                yield None
                continue
            event = EVENT_DECODER.decode(data)
            if not isinstance(event, dict):
                raise ValueError("event is not a JSON object")
            if isinstance(event.get("error"), dict):
                raise _error_event(event)
            yield event
    except (ValueError, RecursionError):  # SSEError and JSONDecodeError are ValueErrors
        raise _malformed() from None


def _error_event(event: dict[str, Any]) -> UpstreamError:
    """Gemini's failure inside an accepted stream, judged like the same error before one."""
    code = event["error"].get("code")
    status = code if type(code) is int and code in ERROR_CODES else 502
    return UpstreamError(status, event, "error_event", classify(status, event))


def _feed(chunker: Chunker, event: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return chunker.feed(event)
    except (TypeError, AttributeError, KeyError, IndexError, ValueError):
        raise _malformed() from None


def _malformed() -> UpstreamError:
    return UpstreamError(502, error_body(502, MALFORMED), "malformed")
