"""The body of a 200 stream: its events paced, stalled or cut as the behaviour says, framed as
the stream's kind wants (SSE, Gemini's JSON array, or the OpenAI-compatible SSE), and counted.

Usage::

    body = EventStream(events, stream_error(behaviour), behaviour, stats, SSE_FRAMING)
"""

import dataclasses
import errno
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent

from simulator.behaviour import Behaviour
from simulator.wire import (
    ARRAY_CLOSE,
    EMPTY_ARRAY,
    OPENAI_DONE,
    frame_array_element,
    frame_bare_error,
    frame_event,
    frame_openai_event,
)

# With stamp, each event's answer text ends with this mark and the event's send time.
STAMP_MARK = "@"


@dataclasses.dataclass(frozen=True)
class Framing:
    """How one kind of stream writes an event, the error that ends it, and its clean end."""

    # (event, its index from 0) -> bytes
    event: Callable[[dict[str, Any], int], bytes]
    # (error, its index, error_bare) -> bytes
    error: Callable[[dict[str, Any], int, bool], bytes]
    # (events sent, whether an error ended them) -> the closing bytes, b"" for none
    end: Callable[[int, bool], bytes]


def _event_or_bare(
    error: dict[str, Any], frame: Callable[[dict[str, Any]], bytes], bare: bool
) -> bytes:
    return frame_bare_error(error) if bare else frame(error)


SSE_FRAMING = Framing(
    event=lambda event, _index: frame_event(event),
    error=lambda error, _index, bare: _event_or_bare(error, frame_event, bare),
    end=lambda _sent, _errored: b"",
)
# The array has no bare form: an error is just its last element, and `]` still closes it.
ARRAY_FRAMING = Framing(
    event=frame_array_element,
    error=lambda error, index, _bare: frame_array_element(error, index),
    end=lambda sent, _errored: ARRAY_CLOSE if sent else EMPTY_ARRAY,
)
# [DONE] only after a whole answer: a stream that ends with an error says nothing more.
OPENAI_FRAMING = Framing(
    event=lambda event, _index: frame_openai_event(event),
    error=lambda error, _index, bare: _event_or_bare(error, frame_openai_event, bare),
    end=lambda _sent, errored: b"" if errored else OPENAI_DONE,
)


@dataclasses.dataclass
class StreamStats:
    """Counts of streams (SSE or JSON array): being sent, started, left, cut, stalled, errored."""

    open: int = 0
    opened: int = 0
    closed_early: int = 0
    cut: int = 0
    stalled: int = 0
    errored: int = 0


class EventStream:
    """The body of a 200 answer: paces, stalls and cuts events, and records how it ended."""

    def __init__(
        self,
        events: Iterator[dict[str, Any]],
        error: dict[str, Any] | None,
        behaviour: Behaviour,
        stats: StreamStats,
        framing: Framing = SSE_FRAMING,
    ) -> None:
        self._events = events
        # Sent after the events; held apart because the framing writes it differently.
        self._error = error
        self._behaviour = behaviour
        self._stats = stats
        self._framing = framing
        self._sent = 0
        self._errored = False
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
            closing = b"" if self._ended else self._framing.end(self._sent, self._errored)
            self._ended = True
            if not closing:
                raise StopIteration
            return closing
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
        index, self._sent = self._sent, self._sent + 1
        if is_error:
            self._stats.errored += 1
            self._errored = True
            return self._framing.error(event, index, self._behaviour.error_bare)
        return self._framing.event(event, index)

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
