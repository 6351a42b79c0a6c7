"""/generate's output formats: the JSON array, NDJSON and SSE, cumulative or delta content."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from app.chunker import Content
from app.formats import FRAMINGS, Name, choose
from tests.client import generate
from tests.conftest import proxy_environ, stop_and_check
from tests.events import sse, text_event
from tests.fakes import relayed as relay
from tests.servers import ProxyServer, configure

ANSWER = " ".join(f"word{number}" for number in range(120))
KNOWN = {"events": 6, "text": ANSWER}


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


def parse(name: str, raw: bytes) -> list[dict[str, Any]]:
    """The body's elements, read the way a client of that format reads them."""
    if name == "json":
        return json.loads(raw)
    if name == "ndjson":
        return [json.loads(line) for line in raw.decode().split("\n") if line]
    elements = []
    for block in raw.decode().split("\n\n"):
        data = [line[6:] for line in block.split("\n") if line.startswith("data: ")]
        if data:
            element = json.loads("\n".join(data))
            if block.startswith("event: error"):
                element["event"] = "error"
            elements.append(element)
    return elements


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


# --- Over real sockets --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy(simulator_url: str) -> Iterator[ProxyServer]:
    """A proxy of this module's own: the failures below must not pause the shared one's keys."""
    server = ProxyServer(proxy_environ(simulator_url)).wait_ready()
    yield server
    stop_and_check(server)


def read_as(name: str, response: requests.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(FRAMINGS[name].media_type)
    return parse(name, response.content)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("params", "headers", "name"),
    [
        ({"format": "ndjson"}, {}, "ndjson"),
        ({}, {"Accept": "application/x-ndjson"}, "ndjson"),
        ({"format": "sse"}, {}, "sse"),
        ({}, {"Accept": "text/event-stream"}, "sse"),
        ({"format": "json"}, {"Accept": "text/event-stream"}, "json"),
    ],
    ids=["ndjson-query", "ndjson-accept", "sse-query", "sse-accept", "query-wins"],
)
def test_each_format_streams_the_arrays_chunks(
    proxy: ProxyServer, sim: str, params: dict, headers: dict, name: str
) -> None:
    """Over real sockets: the same chunks as the JSON array, framed as asked."""
    configure(sim, {"default": KNOWN})
    expected = generate(proxy).json()
    chunks = read_as(name, generate(proxy, params=params, headers=headers))
    assert chunks == expected and chunks[-1]["content"] == ANSWER


@pytest.mark.integration
@pytest.mark.parametrize("name", ["json", "ndjson", "sse"])
def test_delta_content_over_real_sockets(proxy: ProxyServer, sim: str, name: str) -> None:
    """?content=delta: the contents concatenated are the answer, in every format."""
    configure(sim, {"default": KNOWN})
    chunks = read_as(name, generate(proxy, params={"format": name, "content": "delta"}))
    assert len(chunks) > 1 and "".join(chunk["content"] for chunk in chunks) == ANSWER


@pytest.mark.integration
@pytest.mark.parametrize("name", ["json", "ndjson", "sse"])
def test_a_mid_stream_failure_ends_each_format_properly(
    proxy: ProxyServer, sim: str, name: str
) -> None:
    """A cut after a chunk: the format's own error ending, and the body still parses."""
    configure(sim, {"default": {**KNOWN, "cut_after": 4}})
    *chunks, error = read_as(name, generate(proxy, params={"format": name}))
    assert chunks and error["error"]["code"] == 502
    assert error["chunk_number"] == len(chunks) + 1


@pytest.mark.integration
@pytest.mark.parametrize(
    "params", [{"format": "xml"}, {"content": "diff"}], ids=["format", "content"]
)
def test_unknown_output_options_are_a_400_before_gemini_is_called(
    proxy: ProxyServer, sim: str, params: dict
) -> None:
    """Bad ?format= or ?content=: plain JSON 400, whatever Accept says."""
    response = generate(proxy, params=params, headers={"Accept": "text/event-stream"})
    assert response.status_code == 400 and response.json()["error"]["code"] == 400


@pytest.mark.integration
def test_errors_before_streaming_stay_plain_json_in_every_format(
    proxy: ProxyServer, sim: str
) -> None:
    """A Gemini 400 with ?format=sse: its status and a JSON body, not an event stream."""
    configure(sim, {"default": {"status": 400}})
    response = generate(proxy, params={"format": "sse"})
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("name", ["ndjson", "sse"])
def test_unicode_line_breaks_in_the_text_do_not_break_a_line(name: str) -> None:
    """U+2028, U+2029 and U+0085 are escaped in line formats, so line readers keep one object."""
    text = "a\u2028b\u2029c\u0085d"
    raw = relayed(name, sse(text_event(text, 30, "STOP")))
    lines = raw.decode().splitlines()
    assert all(json.loads(line.removeprefix("data: ")) for line in lines if "{" in line)
    assert parse(name, raw)[-1]["content"] == text
