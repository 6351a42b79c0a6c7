"""/generate's output formats: the JSON array, NDJSON and SSE, cumulative or delta content."""

from __future__ import annotations

import json

import pytest

from app.chunker import Content
from app.formats import Name, choose
from tests.client import parse
from tests.events import sse, text_event
from tests.fakes import relayed as relay


@pytest.mark.parametrize(
    ("query", "accept", "name"),
    [
        (None, None, "json"),
        (None, "application/json", "json"),
        (None, "application/x-ndjson", "ndjson"),
        (None, "text/event-stream", "sse"),
        (None, "text/html, text/event-stream;q=0.9", "sse"),
        (None, "*/*", "json"),
        ("ndjson", "text/event-stream", "ndjson"),
        ("json", "text/event-stream", "json"),
        (None, "text/event-stream;q=0, application/json", "json"),
        (None, "application/json;q=0.1, text/event-stream", "sse"),
        (None, "application/x-ndjson;q=0.5, text/event-stream;q=0.5", "ndjson"),
        (None, "TEXT/Event-Stream", "sse"),
    ],
    ids=[
        "default", "json", "ndjson", "sse", "sse-among-others", "any", "query-wins", "query-json",
        "q0-is-refusal", "higher-q-wins", "tie-first-named", "case-insensitive",
    ],
)  # fmt: skip
def test_the_query_wins_then_accept_then_the_array(
    query: str | None, accept: str | None, name: str
) -> None:
    """?format= first, then the first media type Accept names that the proxy knows."""
    assert choose(query, accept).name == name


def test_an_unknown_format_is_refused() -> None:
    """?format=xml names no framing: an error, not a silent default."""
    with pytest.raises(ValueError, match="json, ndjson, sse"):
        choose("xml", None)


STREAM = sse(text_event("a", 12), text_event("b", 25), text_event("c", 30, "STOP"))
CUT = [*sse(text_event("a", 12), text_event("b", 25)), b"data: {not json\r\n\r\n"]


def relayed(name: Name, reads: list[bytes | None], delta: bool = False) -> bytes:
    content: Content = "delta" if delta else "cumulative"
    return b"".join(relay(reads, framing=name, content=content)[0])


@pytest.mark.parametrize("name", ["json", "ndjson", "sse"])
def test_every_format_carries_the_same_chunks(name: str) -> None:
    """The chunking rule does not depend on the framing."""
    assert parse(name, relayed(name, STREAM)) == parse("json", relayed("json", STREAM))


@pytest.mark.parametrize("name", ["json", "ndjson", "sse"])
def test_delta_content_adds_up_to_the_whole_answer(name: str) -> None:
    """With ?content=delta each chunk holds only its new text; joined, they are the answer."""
    chunks = parse(name, relayed(name, STREAM, delta=True))
    assert [chunk["content"] for chunk in chunks] == ["a", "b", "c"]
    whole = parse(name, relayed(name, STREAM))
    assert "".join(chunk["content"] for chunk in chunks) == whole[-1]["content"]


@pytest.mark.parametrize(
    ("name", "ending"),
    [
        ("json", b',{"error":'),
        ("ndjson", b'\n{"error":'),
        ("sse", b"\n\nevent: error\ndata: {"),
    ],
)
def test_a_failure_after_a_chunk_ends_each_format_its_own_way(name: str, ending: bytes) -> None:
    """The array's last element; NDJSON's last line; SSE's `error` event."""
    raw = relayed(name, CUT)
    assert ending in raw
    *chunks, error = parse(name, raw)
    assert chunks and error["error"]["code"] == 502 and error["is_complete"] is False
    assert (error.get("event") == "error") is (name == "sse")


@pytest.mark.parametrize(
    ("name", "keepalive"), [("json", b" "), ("ndjson", b"\n"), ("sse", b": keep-alive\n\n")]
)
def test_keepalives_are_each_formats_own_no_op(name: str, keepalive: bytes) -> None:
    """A space in JSON, an empty line in NDJSON, a comment line in SSE: readers skip them."""
    raw = relayed(name, [None, *STREAM])
    assert raw.startswith(keepalive)
    assert parse(name, raw) == parse(name, relayed(name, STREAM))


@pytest.mark.parametrize("name", ["ndjson", "sse"])
def test_unicode_line_breaks_in_the_text_do_not_break_a_line(name: str) -> None:
    """U+2028, U+2029 and U+0085 are escaped in line formats, so line readers keep one object."""
    text = "a\u2028b\u2029c\u0085d"
    raw = relayed(name, sse(text_event(text, 30, "STOP")))
    lines = raw.decode().splitlines()
    assert all(json.loads(line.removeprefix("data: ")) for line in lines if "{" in line)
    assert parse(name, raw)[-1]["content"] == text
