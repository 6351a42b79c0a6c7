"""How the client's body is framed: the seed's JSON array, NDJSON, or server-sent events.

Usage::

    framing = choose(request.args.get("format"), request.headers.get("Accept"))
    framing.chunk(b'{"content":"Hi"}', first=True, last=False)  # b'[{"content":"Hi"}'

The chunks are the same in every framing; only the bytes around them differ.
"""

from __future__ import annotations

from typing import Literal, get_args

Name = Literal["json", "ndjson", "sse"]
NAMES: tuple[Name, ...] = get_args(Name)


class Framing:
    """The JSON array: `[` with the first chunk, `,` before each next one, `]` with the last."""

    name: Name = "json"
    media_type = "application/json"
    # JSON whitespace, valid anywhere between the array's tokens.
    keepalive = b" "

    def chunk(self, element: bytes, first: bool, last: bool) -> bytes:
        """The bytes that carry one chunk."""
        return (b"[" if first else b",") + element + (b"]" if last else b"")

    def error(self, element: bytes, opened: bool) -> bytes:
        """The bytes that end the body with an error element, after chunks or before any."""
        return (b"," if opened else b"[") + element + b"]"


class NdJson(Framing):
    """One chunk object per line; the error object is the last line."""

    name: Name = "ndjson"
    media_type = "application/x-ndjson"
    # An empty line, which NDJSON readers skip.
    keepalive = b"\n"

    def chunk(self, element: bytes, first: bool, last: bool) -> bytes:
        """One line."""
        return element + b"\n"

    def error(self, element: bytes, opened: bool) -> bytes:
        """One line."""
        return element + b"\n"


class ServerSentEvents(Framing):
    """A `data:` event per chunk; the error as an `error` event."""

    name: Name = "sse"
    media_type = "text/event-stream"
    # An SSE comment line, which EventSource and SSE readers skip.
    keepalive = b": keep-alive\n\n"

    def chunk(self, element: bytes, first: bool, last: bool) -> bytes:
        """One `data:` event (compact JSON holds no line break)."""
        return b"data: " + element + b"\n\n"

    def error(self, element: bytes, opened: bool) -> bytes:
        """One `error` event."""
        return b"event: error\ndata: " + element + b"\n\n"


ARRAY = Framing()
FRAMINGS: dict[Name, Framing] = {"json": ARRAY, "ndjson": NdJson(), "sse": ServerSentEvents()}
BY_MEDIA_TYPE = {framing.media_type: framing for framing in FRAMINGS.values()}


def choose(query: str | None, accept: str | None) -> Framing:
    """The framing named by ?format= (which wins), else the first one Accept names, else JSON.

    Raises ValueError for a ?format= that names none.
    """
    if query is not None:
        if query not in FRAMINGS:
            raise ValueError(f"format must be one of {', '.join(NAMES)}, not {query!r}")
        return FRAMINGS[query]  # type: ignore[index]
    for media_range in (accept or "").split(","):
        framing = BY_MEDIA_TYPE.get(media_range.split(";")[0].strip().lower())
        if framing is not None:
            return framing
    return ARRAY
