"""One upstream stream relayed as the client's JSON array, written element by element.

Usage::

    pieces = relay(upstream.iter_bytes(), Chunker(50), record, secrets=config.api_keys)
    first = next(pieces)  # raises UpstreamError if Gemini failed before the first chunk

The body is `[` chunk `,` chunk ... `]`. `[` goes out with the first chunk, so until then nothing
is committed and a failure can still become a proper HTTP error status. A failure after that
ends the array with one error element, so the body is always valid JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .chunker import Chunker
from .classify import classify
from .errors import error_body
from .logs import LOGGER, Outcome, RequestRecord
from .redact import redact
from .sse import iter_events
from .upstream import UpstreamError

OPEN, SEPARATOR, CLOSE = b"[", b",", b"]"
# JSON whitespace, valid anywhere between the array's tokens: bytes on an idle connection.
KEEPALIVE = b" "
INCOMPLETE = "Gemini's stream ended before a finishReason: the answer is incomplete"
INCOMPLETE_LABEL = "incomplete"
MALFORMED = "Gemini sent a malformed stream event"
INTERNAL = "the proxy failed while relaying the stream; see its log"
# An error event's own code is trusted as an HTTP status only inside the error range.
ERROR_CODES = range(400, 600)


def relay(
    byte_chunks: Iterable[bytes | None],
    chunker: Chunker,
    record: RequestRecord,
    secrets: Sequence[str] = (),
) -> Iterator[bytes]:
    """Yield the pieces of the client's body; raise UpstreamError only before the first chunk.

    A None among `byte_chunks` (a silence upstream) becomes a KEEPALIVE piece.
    """
    opened = False
    try:
        for event in _events(byte_chunks):
            if event is None:
                yield KEEPALIVE
                continue
            try:
                chunk = chunker.feed(event)
            except (TypeError, AttributeError, KeyError, IndexError, ValueError):
                raise _malformed() from None
            if chunk is None:
                continue
            piece = (SEPARATOR if opened else OPEN) + encode(chunk)
            if not opened:
                opened = True
                record.mark_first_chunk()
            if chunker.done:
                record.outcome = "complete"
                yield piece + CLOSE
                return
            yield piece
        raise UpstreamError(502, error_body(502, INCOMPLETE), INCOMPLETE_LABEL)
    except Exception as failure:
        if not opened:
            raise
        if not isinstance(failure, UpstreamError):
            # A bug, not Gemini: logged with its traceback, reported to the client as INTERNAL,
            # and the array still closed so the body stays valid JSON.
            LOGGER.exception("stream failed", extra={"request_id": record.request_id})
            failure = UpstreamError(500, error_body(500, INTERNAL), "internal")
        yield SEPARATOR + error_element(failure, chunker, record, secrets) + CLOSE


def error_element(
    failure: UpstreamError, chunker: Chunker, record: RequestRecord, secrets: Sequence[str]
) -> bytes:
    """The array's last element for a stream that failed after its status was sent."""
    error = failure.body["error"]
    record.error = error.get("status", "UNKNOWN")
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
    return redact(encode_text(element), secrets).encode()


def outcome_of(failure: UpstreamError) -> Outcome:
    """A failed stream's outcome: incomplete when it just ended early, else upstream_error."""
    return "incomplete" if failure.upstream_status == INCOMPLETE_LABEL else "upstream_error"


def encode(element: dict[str, Any]) -> bytes:
    """One array element as compact UTF-8 JSON."""
    return encode_text(element).encode()


def encode_text(element: dict[str, Any]) -> str:
    """One array element as compact JSON text."""
    return json.dumps(element, ensure_ascii=False, separators=(",", ":"))


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


def _malformed() -> UpstreamError:
    return UpstreamError(502, error_body(502, MALFORMED), "malformed")
