"""SSE framing: events split anywhere, CRLF or LF, UTF-8 decoded per complete event."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.sse import BOM, SSEDecoder, SSEError
from tests.events import sse_payloads

EVENTS = ['{"text": "naïve café ☕ 🚀"}', '{"n": 2}', '{"text": "日本語"}']


def framed(separator: str) -> bytes:
    return "".join(f"data: {data}{separator}" for data in EVENTS).encode()


def feed_split(body: bytes, cut: int) -> list[str]:
    """Decode the body delivered as two reads cut at `cut`."""
    return sse_payloads([body[:cut], body[cut:]])


@pytest.mark.parametrize("separator", ["\r\n\r\n", "\n\n", "\r\n\n", "\n\r\n"])
def test_events_are_found_at_every_split_point(separator: str) -> None:
    """Every byte boundary, inside characters and CR/LF pairs too, gives the same events."""
    body = framed(separator)
    for cut in range(len(body) + 1):
        assert feed_split(body, cut) == EVENTS, f"cut at byte {cut}"


def test_byte_at_a_time_delivery_yields_each_event_as_soon_as_it_is_complete() -> None:
    """An event comes out on the read that completes its blank line, not later."""
    decoder = SSEDecoder()
    body = framed("\r\n\r\n")
    first_end = body.index(b"\r\n\r\n") + 4
    seen = [decoder.feed(body[i : i + 1]) for i in range(first_end)]
    assert seen[-1] == [EVENTS[0]]
    assert not any(seen[:-1])


def test_a_multibyte_character_split_between_reads_is_decoded_whole() -> None:
    """The 4 bytes of an emoji across two reads decode as one character."""
    body = 'data: {"t": "🚀"}\r\n\r\n'.encode()
    rocket = body.index("🚀".encode())
    assert sse_payloads([body[: rocket + 2], body[rocket + 2 :]]) == ['{"t": "🚀"}']


def test_a_last_event_without_a_blank_line_is_still_delivered() -> None:
    """A stream that ends right after its last data line loses nothing."""
    assert sse_payloads([b'data: {"a": 1}\r\n\r\ndata: {"b": 2}']) == ['{"a": 1}', '{"b": 2}']


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b": keep-alive\r\n\r\ndata: 1\r\n\r\n", ["1"]),
        (b"event: message\r\nid: 7\r\ndata: 2\r\n\r\n", ["2"]),
        (b"data:3\n\n", ["3"]),
        (b"data: a\ndata: b\n\n", ["a\nb"]),
        (b"\r\n\r\n\r\n\r\ndata: 4\r\n\r\n", ["4"]),
        (
            b'data: 5\r\n\r\n{\n  "error": {\n    "code": 503\n  }\n}\n',
            ["5", '{\n  "error": {\n    "code": 503\n  }\n}'],
        ),
    ],
    ids=["comment", "other-fields", "no-space", "multi-line", "blank-lines", "bare-json-error"],
)
def test_only_data_fields_are_payload(body: bytes, expected: list[str]) -> None:
    """Comments and non-data fields carry no payload; multi-line data is joined with LF; a bare
    JSON object (Gemini ending a broken stream with its error body) is passed on whole."""
    assert sse_payloads([body]) == expected


def test_a_byte_order_mark_at_the_start_is_skipped_wherever_the_reads_split_it() -> None:
    """The SSE spec allows a leading BOM; it must not swallow the first event."""
    body = b"\xef\xbb\xbf" + framed("\r\n\r\n")
    for cut in range(6):
        assert feed_split(body, cut) == EVENTS, f"cut at byte {cut}"


def test_invalid_utf8_in_an_event_is_an_error() -> None:
    """Bytes that are not UTF-8 raise SSEError instead of passing garbage on."""
    with pytest.raises(SSEError):
        sse_payloads([b"data: \xff\xfe\r\n\r\n"])


@pytest.mark.parametrize("then", ["feed", "close"])
def test_events_before_an_invalid_one_in_the_same_read_are_given_first(then: str) -> None:
    """The good events of the read come out; the bad one raises at the next call, as it would
    had it come in a read of its own."""
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"n": 1}\r\n\r\ndata: \xff\r\n\r\ndata: {"n": 3}\r\n\r\n') == [
        '{"n": 1}'
    ]
    with pytest.raises(SSEError):
        decoder.feed(b"") if then == "feed" else decoder.close()


# The events of a whole body as the SSE spec and app.sse's docstrings state them, written plainly
# (app.sse finds the same events another, faster way): an optional BOM, events split at
# CR? LF CR? LF, lines at CR? LF, data lines joined, a bare JSON object passed on whole.
def reference_events(body: bytes) -> list[str]:
    events = []
    for raw in re.split(rb"\r?\n\r?\n", body.removeprefix(BOM)):
        text = raw.decode()
        lines = [line for line in re.split(r"\r?\n", text) if line.startswith("data:")]
        if lines:
            events.append("\n".join(line[5:].removeprefix(" ") for line in lines))
        elif text.lstrip().startswith("{"):
            events.append(text.strip())
    return events


PIECES = [b"data: ", b"data:", b"x", b"\r", b"\n", b": c", b"{", b" ", "é".encode(), BOM]


@given(
    body=st.lists(st.sampled_from(PIECES)).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=64), max_size=6),
)
def test_any_body_read_in_any_pieces_gives_the_events_the_spec_gives(
    body: bytes, cuts: list[int]
) -> None:
    """CR and LF in any mix, a BOM, multibyte characters, read in any pieces: the events are
    those of the whole body read by the spec."""
    bounds = sorted({0, len(body), *(min(cut, len(body)) for cut in cuts)})
    reads = [body[start:end] for start, end in itertools.pairwise(bounds)]
    assert sse_payloads(reads) == reference_events(body)
