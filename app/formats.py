"""How the client's body is framed: the specification's JSON array, NDJSON, or server-sent events.

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
        return one_line(element) + b"\n"

    def error(self, element: bytes, opened: bool) -> bytes:
        return one_line(element) + b"\n"


class ServerSentEvents(Framing):
    """A `data:` event per chunk; the error as an `error` event."""

    name: Name = "sse"
    media_type = "text/event-stream"
    # An SSE comment line, which EventSource and SSE readers skip.
    keepalive = b": keep-alive\n\n"

    def chunk(self, element: bytes, first: bool, last: bool) -> bytes:
        return b"data: " + one_line(element) + b"\n\n"

    def error(self, element: bytes, opened: bool) -> bytes:
        return b"event: error\ndata: " + one_line(element) + b"\n\n"


# Compact JSON holds no line feed, but may hold these raw, and line readers that split like
# Python's str.splitlines() break a line at them; escaped, the JSON value is the same.
LINE_BREAKS = {"\u0085": b"\\u0085", "\u2028": b"\\u2028", "\u2029": b"\\u2029"}


def one_line(element: bytes) -> bytes:
    """`element` (compact UTF-8 JSON) with the Unicode line breaks in its strings escaped."""
    for character, escaped in LINE_BREAKS.items():
        encoded = character.encode()
        if encoded in element:
            element = element.replace(encoded, escaped)
    return element


ARRAY = Framing()
FRAMINGS: dict[Name, Framing] = {"json": ARRAY, "ndjson": NdJson(), "sse": ServerSentEvents()}
BY_MEDIA_TYPE = {framing.media_type: framing for framing in FRAMINGS.values()}


def choose(query: str | None, accept: str | None) -> Framing:
    """The framing named by ?format= (which wins), else the one Accept prefers, else JSON.

    Of the media types Accept names that the proxy knows, the highest q wins, the first named
    on a tie; q=0 means "not this one". Raises ValueError for a ?format= that names none.
    """
    if query is not None:
        if query not in FRAMINGS:
            raise ValueError(f"format must be one of {', '.join(NAMES)}, not {query!r}")
        return FRAMINGS[query]  # type: ignore[index]
    offers = []
    for position, media_range in enumerate((accept or "").split(",")):
        media_type, *parameters = (part.strip().lower() for part in media_range.split(";"))
        framing = BY_MEDIA_TYPE.get(media_type)
        quality = _quality(parameters)
        if framing is not None and quality > 0:
            offers.append((-quality, position, framing))
    return min(offers, key=lambda offer: offer[:2])[2] if offers else ARRAY


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0
