"""One Gemini stream relayed as the client's body, chunk by chunk, in the chosen framing.

Usage::

    relay = Relay(upstream, Chunker(50), record, ARRAY, KeepAlive(15))
    for piece in relay:
        ...
    relay.close()

The first chunk is the body's first byte other than keep-alives (in the JSON array, `[` goes out
with it). A failure after any byte went out ends the body with one error element
(`end_with_error`; app.formats says how each framing writes it), so the body always parses.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

from .chunker import Chunker
from .classify import classify
from .errors import UpstreamError, error_body
from .formats import Framing
from .logs import RequestRecord
from .metrics import Outcome
from .redact import redact_json
from .sse import SSEDecoder, SSEError
from .upstream import UpstreamStream

INCOMPLETE = "Gemini's stream ended before a finishReason: the answer is incomplete"
MALFORMED = "Gemini sent a malformed stream event"
# A wait for the next keep-alive that is already due still gives the call a moment to answer.
MIN_WAIT = 0.01
# An error event's own code is trusted as an HTTP status only inside the error range.
ERROR_CODES = range(400, 600)


class KeepAlive:
    """When the client last got a byte, across all of a request's attempts.

    Usage::

        clock = KeepAlive(15.0)
        if clock.due():
            clock.sent(); yield framing.keepalive
    """

    def __init__(self, interval: float, start: float | None = None) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self.interval = interval
        self.start = time.perf_counter() if start is None else start
        # None until the client's first byte.
        self.last: float | None = None

    @property
    def began(self) -> bool:
        """Whether any byte went to the client: from then on its 200 is committed."""
        return self.last is not None

    def due(self) -> bool:
        """Whether the client has had no byte for `interval` seconds."""
        return time.perf_counter() - self._since() >= self.interval

    def wait(self) -> float:
        """Seconds until a keep-alive is due (never zero, so a wait on it always yields)."""
        return max(self._since() + self.interval - time.perf_counter(), MIN_WAIT)

    def sent(self) -> None:
        self.last = time.perf_counter()

    def _since(self) -> float:
        return self.start if self.last is None else self.last


class StreamIncomplete(UpstreamError):
    """Gemini's stream ended without a finishReason."""

    def __init__(self) -> None:
        super().__init__(502, error_body(502, INCOMPLETE), "incomplete")


class Relay:
    """One attempt's Gemini stream as the client's body pieces: framed chunks and keep-alives.

    Usage::

        relay = Relay(upstream, Chunker(50), record, ARRAY, KeepAlive(15))
        for piece in relay:  # raises UpstreamError where Gemini's stream fails
            ...
        relay.close()  # once the response is sent

    A silence upstream (a None from the stream) becomes the framing's keep-alive, and so does
    an event that adds nothing for the client (a thought, tokens short of a chunk) once the
    clock says one is due. Every failure is raised, after the first chunk too: what the client
    gets instead is the attempt loop's to say (app.failover).
    """

    def __init__(
        self,
        upstream: UpstreamStream,
        chunker: Chunker,
        record: RequestRecord,
        framing: Framing,
        clock: KeepAlive,
    ) -> None:
        self.upstream = upstream
        self.chunker = chunker
        self.record = record
        self.framing = framing
        self.clock = clock

    @property
    def began(self) -> bool:
        """Whether a chunk went out: from then on the body is this attempt's, not retried."""
        return self.chunker.chunks_sent > 0

    def __iter__(self) -> Iterator[bytes]:
        decoder = SSEDecoder()
        # The request's greenlet waits for Gemini at the bottom of this stack, and whatever a
        # frame in it holds is held for every open stream: each event is made into its piece by
        # a call, so its JSON, its chunk and the chunk's copy of the text are freed before the
        # next read (about 1 KB a stream per event received, measured).
        for data in itertools.chain(self.upstream.iter_bytes(), [_END]):
            for piece in map(self._piece, _payloads(decoder, data)):
                if piece is not None:
                    yield piece
                    if self.chunker.done:
                        return
        raise StreamIncomplete()

    def _piece(self, payload: str | None) -> bytes | None:
        """What one event (None: a silence) gives the client: a framed chunk, a keep-alive, or
        nothing."""
        chunker, clock, framing = self.chunker, self.clock, self.framing
        chunk = None if payload is None else _feed(chunker, _event(payload))
        if chunk is None:
            if payload is None or clock.due():
                clock.sent()
                return framing.keepalive
            return None
        first = chunker.chunks_sent == 1
        if first:
            self.record.mark_first_chunk()
        clock.sent()
        if chunker.done:
            self.record.outcome = "complete"
        return framing.chunk(encode(chunk), first, last=chunker.done)

    def close(self) -> None:
        """Release the upstream; a complete answer's connection goes back to the pool."""
        self.upstream.close(reuse=self.chunker.done)


def end_with_error(
    failure: UpstreamError,
    chunks_sent: int,
    record: RequestRecord,
    framing: Framing,
    secrets: Sequence[str],
) -> bytes:
    """Note the failure on `record`; return the bytes that end the body with its error element.

    With no chunk sent (only keep-alives went out) the element opens the body too.
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
        "chunk_number": chunks_sent + 1,
    }
    # Gemini quotes the key in some messages ("Consumer 'api_key:...' suspended").
    return framing.error(encode(redact_json(element, secrets)), opened=chunks_sent > 0)


def outcome_of(failure: UpstreamError) -> Outcome:
    """A failed stream's outcome: incomplete when it just ended early, else upstream_error."""
    return "incomplete" if isinstance(failure, StreamIncomplete) else "upstream_error"


def encode(element: dict[str, Any]) -> bytes:
    """One array element as compact UTF-8 JSON."""
    try:
        return json.dumps(element, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        # A lone surrogate, which Gemini's JSON can carry escaped (\ud800) and UTF-8 cannot:
        # escaped again, as it came, the element is still valid JSON.
        return json.dumps(element, separators=(",", ":")).encode()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# NaN and Infinity, which Python's parser takes by default, would go on to the client as
# invalid JSON; one decoder for all events, since json.loads(..., **options) builds one per call.
EVENT_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


class _EndOfStream:
    """Read after Gemini's last bytes: the decoder then gives an event the stream ended without
    a blank line after."""


_END = _EndOfStream()


def _payloads(decoder: SSEDecoder, data: bytes | _EndOfStream | None) -> list[str] | list[None]:
    """The events `data` completes, each decoded only when the relay reaches it (an error
    ends the stream where it stands, however the bytes were split into reads); [None] for a
    silence; the last ones at _END."""
    if data is None:
        return [None]
    try:
        return decoder.close() if isinstance(data, _EndOfStream) else decoder.feed(data)
    except SSEError:
        raise _malformed() from None


def _event(data: str) -> dict[str, Any]:
    try:
        event = EVENT_DECODER.decode(data)
    except (ValueError, RecursionError):  # JSONDecodeError and _reject_constant's are ValueErrors
        raise _malformed() from None
    if not isinstance(event, dict):
        raise _malformed()
    if isinstance(event.get("error"), dict):
        raise _error_event(event)
    return event


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
