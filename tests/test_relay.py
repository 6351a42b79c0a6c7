"""The relay, as /generate runs it: events in, a JSON array out, element by element, always valid
JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from app.chunker import Chunker
from app.errors import error_body
from app.logs import RequestRecord
from app.upstream import UpstreamError, UpstreamUnreachable
from tests.events import sse, text_event
from tests.fakes import relayed


def run(
    reads: list[bytes] | Iterator[bytes], chunk_token: int = 10
) -> tuple[list[bytes], RequestRecord]:
    return relayed(reads, chunk_token)


def test_the_body_is_one_json_array_written_one_element_per_piece() -> None:
    """`[` comes with the first chunk, `,` before each next one, `]` with the final one."""
    pieces, record = run(sse(text_event("a", 12), text_event("b", 25), text_event("c", 30, "STOP")))
    assert (
        pieces[0].startswith(b"[{") and pieces[1].startswith(b",{") and pieces[-1].endswith(b"}]")
    )
    body = json.loads(b"".join(pieces))
    assert [element["content"] for element in body] == ["a", "ab", "abc"]
    assert record.first_chunk_seconds is not None and record.error is None


def test_non_ascii_text_is_written_as_utf8_not_escaped() -> None:
    """Text reaches the client byte for byte in UTF-8."""
    pieces, _ = run(sse(text_event("café ☕", 3, "STOP")))
    assert "café ☕".encode() in b"".join(pieces)


def test_a_silence_inside_an_event_is_a_keepalive_and_the_event_still_decodes() -> None:
    """A None (Gemini silent for the keep-alive interval) between two reads of one event sends
    a keep-alive; the event, completed by the next read, decodes whole."""
    (event,) = sse(text_event("half and half", 3, "STOP"))
    half = len(event) // 2
    pieces, _ = run([event[:half], None, event[half:]])
    assert pieces[0] == b" "
    assert [element["content"] for element in json.loads(b"".join(pieces))] == ["half and half"]


def test_an_event_the_stream_ends_without_a_blank_line_after_still_counts() -> None:
    """Gemini's last event without its CRLF CRLF is still read when the stream ends."""
    (event,) = sse(text_event("end", 3, "STOP"))
    pieces, record = run([event.removesuffix(b"\r\n\r\n")])
    assert [element["content"] for element in json.loads(b"".join(pieces))] == ["end"]
    assert record.outcome == "complete"


@pytest.mark.parametrize(
    ("tail", "status"),
    [
        ([], "BAD_GATEWAY"),
        (
            [b'data: {"error": {"code": 503, "status": "UNAVAILABLE", "message": "busy"}}\r\n\r\n'],
            "UNAVAILABLE",
        ),
        ([b"data: {not json\r\n\r\n"], "BAD_GATEWAY"),
        ([b"data: [1, 2]\r\n\r\n"], "BAD_GATEWAY"),
        ([b'data: {"candidates": "oops"}\r\n\r\n'], "BAD_GATEWAY"),
        ([b"data: \xff\r\n\r\n"], "BAD_GATEWAY"),
    ],
    ids=["no-finish-reason", "error-event", "bad-json", "not-an-object", "bad-shape", "bad-utf8"],
)
@pytest.mark.parametrize("one_read", [False, True], ids=["read-by-read", "in-one-read"])
def test_a_failure_after_a_chunk_ends_the_array_with_one_error_element(
    tail: list[bytes], status: str, one_read: bool
) -> None:
    """The body stays valid JSON: chunks, then {"error": ..., "is_complete": false}; the same
    however Gemini's bytes were split into reads."""
    reads = sse(text_event("a", 12)) + tail
    pieces, record = run([b"".join(reads)] if one_read else reads)
    body = json.loads(b"".join(pieces))
    assert body[0]["content"] == "a"
    assert body[-1]["is_complete"] is False
    assert body[-1]["chunk_number"] == 2
    assert body[-1]["error"]["status"] == status
    assert set(body[-1]["error"]) == {"code", "status", "message"}
    assert record.error == status


def test_a_bug_after_a_chunk_still_closes_the_array_with_an_internal_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unexpected exception mid-stream: logged, then an INTERNAL element and `]`."""
    feed = Chunker.feed

    def failing(self: Chunker, event: dict) -> dict | None:
        if self.chunks_sent:
            raise RuntimeError("a bug")
        return feed(self, event)

    monkeypatch.setattr(Chunker, "feed", failing)
    pieces, record = run(sse(text_event("a", 12), text_event("b", 25)))
    body = json.loads(b"".join(pieces))
    assert body[-1]["error"]["status"] == "INTERNAL" and body[-1]["chunk_number"] == 2
    assert record.error == "INTERNAL"


def test_a_bug_before_any_chunk_is_raised_to_become_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing sent yet, the exception goes to the app's error handler."""

    def failing(self: Chunker, event: dict) -> dict | None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Chunker, "feed", failing)
    with pytest.raises(RuntimeError):
        run(sse(text_event("a", 12)))


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_numbers_from_gemini_are_a_malformed_event(constant: bytes) -> None:
    """NaN would be passed on as invalid JSON; it is refused as malformed instead."""
    event = b'data: {"usageMetadata": {"totalTokenCount": ' + constant + b"}}\r\n\r\n"
    pieces, _ = run([*sse(text_event("a", 12)), event])
    body = json.loads(b"".join(pieces))
    assert body[-1]["error"]["message"] == "Gemini sent a malformed stream event"


def test_a_broken_connection_after_a_chunk_ends_with_an_error_element() -> None:
    """The upstream dying mid-stream still gives a parseable body."""

    def reads() -> Iterator[bytes]:
        yield from sse(text_event("a", 12))
        raise UpstreamUnreachable("the Gemini stream broke off")

    body = json.loads(b"".join(run(reads())[0]))
    assert body[-1]["error"]["code"] == 502


@pytest.mark.parametrize(
    "reads",
    [
        [],
        sse(text_event("a", 3)),
        [b'data: {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "q"}}\r\n\r\n'],
    ],
    ids=["empty", "no-chunk-yet", "error-event"],
)
def test_a_failure_before_the_first_chunk_is_raised_not_written(reads: list[bytes]) -> None:
    """Nothing is committed yet, so the caller can still answer with an HTTP error status."""
    with pytest.raises(UpstreamError):
        run(reads)


def test_an_error_event_keeps_geminis_code_and_status_before_streaming() -> None:
    """Gemini's in-stream error keeps its own code and status."""
    event = error_body(429, "quota")
    with pytest.raises(UpstreamError) as caught:
        run(sse(event))
    assert caught.value.status == 429
    assert caught.value.body == event


def test_a_key_in_an_error_message_is_redacted_from_the_error_element() -> None:
    """Gemini quoting a key in a mid-stream error never puts it in the client's body."""
    key = "AIza" + "x" * 35
    # A quota error, which the client gets as Gemini said it (a refused key's is restated).
    message = f"Quota exceeded for consumer 'api_key:{key}'"
    event = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": message}}
    body = b"".join(run(sse(text_event("a", 12), event))[0])
    assert key.encode() not in body
    assert b"[REDACTED]" in body


@pytest.mark.parametrize("code", [200, 0, 1000, True, "503", None])
def test_an_error_event_with_an_odd_code_is_a_502_not_that_code(code: object) -> None:
    """Only 400-599 from an error event become the HTTP status; anything else is 502."""
    event = {"error": {"code": code, "status": "UNAVAILABLE", "message": "x"}}
    with pytest.raises(UpstreamError) as caught:
        run(sse(event))
    assert caught.value.status == 502


def test_an_odd_error_code_after_a_chunk_is_reported_as_502_in_the_element() -> None:
    """The element's code is a real error status even when Gemini's event carries 200."""
    event = {"error": {"code": 200, "status": "UNAVAILABLE", "message": "x"}}
    body = json.loads(b"".join(run(sse(text_event("a", 12), event))[0]))
    assert body[-1]["error"]["code"] == 502


def test_configured_keys_are_redacted_from_error_elements_whatever_their_shape() -> None:
    """A key that does not look like Google's is still blanked when it is one of ours."""
    event = {"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "key my-odd-key"}}
    pieces, _ = relayed(sse(text_event("a", 12), event), secrets=("my-odd-key",))
    body = b"".join(pieces)
    assert b"my-odd-key" not in body and b"[REDACTED]" in body


def test_a_silence_becomes_json_whitespace_wherever_it_falls() -> None:
    """Keep-alive pieces are spaces, before the array opens and between elements alike."""
    reads = [None, *sse(text_event("a", 12)), None, *sse(text_event("b", 30, "STOP"))]
    pieces, _ = run(reads)
    assert pieces[0] == b" " and pieces[2] == b" "
    assert [element["content"] for element in json.loads(b"".join(pieces))] == ["a", "ab"]


@pytest.mark.parametrize(
    ("reads", "outcome"),
    [
        (sse(text_event("a", 12), text_event("b", 30, "STOP")), "complete"),
        (sse(text_event("a", 12), text_event("b", 30)), "incomplete"),
        ([*sse(text_event("a", 12)), b"data: {not json\r\n\r\n"], "upstream_error"),
    ],
    ids=["complete", "no-finish-reason", "malformed"],
)
def test_the_record_says_how_the_stream_ended(reads: list[bytes], outcome: str) -> None:
    """complete, incomplete (no finishReason) or upstream_error, for the outcomes metric."""
    _, record = run(reads)
    assert record.outcome == outcome


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota"}, "quota"),
        ({"code": 503, "status": "UNAVAILABLE", "message": "busy"}, "upstream_error"),
        ({"code": 400, "status": "INVALID_ARGUMENT", "message": "bad"}, "client_error"),
    ],
)
def test_an_error_event_before_any_chunk_is_judged_like_the_same_http_error(
    error: dict, kind: str
) -> None:
    """A 429 event cools the key as a 429 answer would; a 400 event blames the request."""
    with pytest.raises(UpstreamError) as caught:
        run(sse({"error": error}))
    assert caught.value.verdict.kind == kind


@pytest.mark.parametrize(
    ("events", "content"),
    [
        ([text_event("\ud800", 12, "STOP")], "\ud800"),
        ([text_event("\ud83d", 12), text_event("\ude80", 25, "STOP")], "🚀"),
    ],
    ids=["lone", "pair-split-across-events"],
)
def test_surrogates_gemini_sent_escaped_reach_the_client_escaped(
    events: list[dict], content: str
) -> None:
    """UTF-8 cannot carry a lone surrogate: the chunk escapes it as Gemini did, and stays JSON."""
    body = json.loads(b"".join(run(sse(*events))[0]))
    assert body[-1]["content"] == content and body[-1]["is_complete"]


def test_a_lone_surrogate_outside_the_text_still_gives_a_json_body() -> None:
    """The final chunk's finish reason, like any other field Gemini sends, is escaped too."""
    body = json.loads(b"".join(run(sse(text_event("a", 12, "\udfff")))[0]))
    assert body[-1]["finish_reason"] == "\udfff"


def test_a_text_that_is_not_a_string_is_a_malformed_event_where_it_stands() -> None:
    """A list where Gemini's text belongs ends the stream at that event, after the chunk before."""
    bad = {"candidates": [{"content": {"parts": [{"text": ["not", "text"]}]}}]}
    body = json.loads(b"".join(run(sse(text_event("a", 12), bad, text_event("b", 25)))[0]))
    assert body[0]["content"] == "a"
    assert body[-1]["error"]["message"] == "Gemini sent a malformed stream event"
    assert body[-1]["chunk_number"] == 2
