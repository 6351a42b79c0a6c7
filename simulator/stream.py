"""The body of a 200 stream: its events paced, stalled or cut as the behaviour says, and counted.

Usage::

    body = EventStream(events, stream_error(behaviour), behaviour, stats, array=False)
"""

import dataclasses
import errno
import time
from collections.abc import Iterator
from typing import Any

import gevent

from simulator.behaviour import Behaviour
from simulator.wire import (
    ARRAY_CLOSE,
    EMPTY_ARRAY,
    frame_array_element,
    frame_bare_error,
    frame_event,
)

# With stamp, each event's answer text ends with this mark and the event's send time.
STAMP_MARK = "@"


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
