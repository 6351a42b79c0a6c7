"""Server-sent events from Gemini: bytes as they arrive in, one `data` payload per event out.

Usage::

    decoder = SSEDecoder()
    for data in decoder.feed(read):  # each read as it arrives; decoder.close() after the last
        event = json.loads(data)
"""

from __future__ import annotations

import re

# Gemini ends events with CRLF CRLF; LF LF (and a mix) is accepted too, as the SSE spec allows.
# The pattern starts at the separator's first LF and the CR before it is trimmed from the event:
# a pattern starting with an optional CR is tried at every byte, some ten times slower.
EVENT_END = re.compile(rb"\n\r?\n")
CR = ord("\r")
LINE_END = re.compile(r"\r?\n")
# A separator that a new read completes began at most 3 bytes back: the pattern is 3 bytes at most
# (LF CR LF), and the CR before it is looked up by index, not matched.
SEPARATOR_OVERLAP = 3
# The SSE spec lets a stream start with a UTF-8 byte order mark, to be ignored.
BOM = b"\xef\xbb\xbf"


class SSEError(ValueError):
    """The upstream stream is not valid SSE (for example, not UTF-8)."""


class SSEDecoder:
    """Splits a byte stream into events; decodes UTF-8 only once an event is complete."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._started = False
        # An event that is not UTF-8, met after good ones in the same read: raised next call.
        self._error: SSEError | None = None

    def feed(self, data: bytes) -> list[str]:
        """Take the next bytes read; return the data of every event they complete.

        Raises SSEError at the first event that is not UTF-8: at once when it is the first
        event of the read, else at the next call, once the events before it were taken.
        """
        if self._error is not None:
            raise self._error
        start = max(0, len(self._buffer) - SEPARATOR_OVERLAP)
        self._buffer += data
        if not self._started:
            if len(self._buffer) < len(BOM) and BOM.startswith(self._buffer):
                return []
            self._started = True
            if self._buffer.startswith(BOM):
                del self._buffer[: len(BOM)]
        payloads = []
        consumed = 0
        for match in EVENT_END.finditer(self._buffer, start):
            end = match.start()
            if end > consumed and self._buffer[end - 1] == CR:
                end -= 1
            try:
                payload = _event_data(self._buffer[consumed:end])
            except SSEError as error:
                if not payloads:
                    raise
                self._error = error
                break
            if payload is not None:
                payloads.append(payload)
            consumed = match.end()
        if consumed:
            del self._buffer[:consumed]
        return payloads

    def close(self) -> list[str]:
        """Return the data of a last event that the stream ended without a blank line after."""
        if self._error is not None:
            raise self._error
        payload = _event_data(self._buffer)
        self._buffer.clear()
        return [] if payload is None else [payload]


def _event_data(raw: bytes | bytearray) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SSEError(f"event is not valid UTF-8: {error.reason}") from None
    if "\n" not in text and text.startswith("data:"):
        # Gemini's every event: one data line. The same answer as below, without splitting.
        return text[5:].removeprefix(" ")
    lines = [line for line in LINE_END.split(text) if line.startswith("data:")]
    if not lines:
        if text.lstrip().startswith("{"):
            # Gemini ends some broken streams with a bare JSON error body, not framed as an
            # event; it is passed on whole so the error is not lost.
            return text.strip()
        # Comments, `event:`/`id:`-only blocks and stray blank lines carry no payload.
        return None
    return "\n".join(line[5:].removeprefix(" ") for line in lines)
