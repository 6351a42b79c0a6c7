"""The chunking rule, clause by clause, and as properties over random streams."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.chunker import Chunker
from tests.chunk_rules import check_rule, run


def event(
    text: str | None = None,
    total: int | None = None,
    finish: str | None = None,
    thought: bool = False,
    parts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Gemini stream event with one candidate."""
    part_list = list(parts or [])
    if text is not None:
        part_list.insert(0, {"text": text, "thought": True} if thought else {"text": text})
    candidate: dict[str, Any] = {"content": {"parts": part_list, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    result: dict[str, Any] = {"candidates": [candidate]}
    if total is not None:
        result["usageMetadata"] = {"promptTokenCount": 5, "totalTokenCount": total}
    return result


def chunks_of(events: list[dict[str, Any]], chunk_token: int = 50) -> list[dict[str, Any]]:
    return [chunk for _, chunk in run(events, chunk_token)]


def test_the_specifications_example_gives_a_chunk_at_65_and_the_final_at_125() -> None:
    """The specification's example: totals 65 then 125 with STOP."""
    chunks = chunks_of([event("Hello", 65), event(" world", 125, "STOP")])
    assert chunks == [
        {"content": "Hello", "is_complete": False, "chunk_number": 1, "total_tokens": 65},
        {
            "content": "Hello world",
            "is_complete": True,
            "chunk_number": 2,
            "total_tokens": 125,
            "finish_reason": "STOP",
            "usage": {"promptTokenCount": 5, "totalTokenCount": 125},
        },
    ]


def test_a_big_first_event_gives_one_chunk_and_the_next_waits_for_the_next_multiple() -> None:
    """Total 160 at once: one chunk, then nothing until 200 (no bursts)."""
    chunks = chunks_of([event("a", 160), event("b", 199), event("c", 200), event("d", 230)])
    assert [(c["content"], c["total_tokens"]) for c in chunks] == [("a", 160), ("abc", 200)]


def test_below_the_first_threshold_nothing_is_sent() -> None:
    """Totals under chunk_token send nothing until the end."""
    assert chunks_of([event("a", 10), event("b", 49)]) == []


def test_no_chunk_when_the_answer_text_did_not_grow() -> None:
    """Thought tokens push the total but no chunk goes out before answer text exists."""
    events = [
        event("thinking", 80, thought=True),
        event("more", 140, thought=True),
        event("A", 150),
    ]
    chunks = chunks_of(events)
    assert [(c["content"], c["total_tokens"]) for c in chunks] == [("A", 150)]


def test_thought_parts_never_enter_content() -> None:
    """Thought text is left out of every chunk, the final one included."""
    events = [event("secret plan", 60, thought=True), event("answer", 70, "STOP")]
    assert chunks_of(events)[-1]["content"] == "answer"


def test_an_event_without_usage_keeps_the_last_total() -> None:
    """A missing usageMetadata keeps the previous total."""
    events = [event("a", 40), event("b"), event("c", None, "STOP")]
    assert [c["total_tokens"] for c in chunks_of(events)] == [40]


@pytest.mark.parametrize("reason", ["STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "OTHER"])
def test_any_finish_reason_gives_the_final_chunk(reason: str) -> None:
    """The final chunk comes from any finishReason and names it."""
    final = chunks_of([event("x", 3, reason)])[-1]
    assert final["is_complete"] is True
    assert final["finish_reason"] == reason


def test_non_text_parts_reach_the_final_chunk_unchanged() -> None:
    """functionCall and other non-text parts ride on the final chunk as `parts`."""
    call = {
        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
        "thoughtSignature": "s",
    }
    code = {"executableCode": {"language": "PYTHON", "code": "print(1)"}}
    chunks = chunks_of([event("a", 60, parts=[code]), event(None, 70, "STOP", parts=[call])])
    assert chunks[-1]["parts"] == [code, call]
    assert "parts" not in chunks[0]


def test_a_blocked_prompt_ends_with_a_final_chunk_naming_the_block_reason() -> None:
    """promptFeedback.blockReason with no candidates is a final chunk."""
    blocked = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    }
    (final,) = chunks_of([blocked])
    assert final["is_complete"] is True
    assert final["finish_reason"] == "PROHIBITED_CONTENT"
    assert final["content"] == ""
    assert final["prompt_feedback"] == {"blockReason": "PROHIBITED_CONTENT"}


def test_prompt_feedback_beside_candidates_does_not_end_the_stream() -> None:
    """blockReason ends the answer only when Gemini sent no candidate."""
    mixed = {**event("a", 60), "promptFeedback": {"blockReason": "SAFETY"}}
    (chunk,) = chunks_of([mixed])
    assert chunk["is_complete"] is False


def test_feeding_after_the_final_chunk_is_refused() -> None:
    """A finished chunker takes no more events."""
    chunker = Chunker(50)
    chunker.feed(event("x", 1, "STOP"))
    with pytest.raises(ValueError):
        chunker.feed(event("y", 2))


@pytest.mark.parametrize("bad", [0, -1])
def test_chunk_token_must_be_positive(bad: int) -> None:
    """A non-positive chunk_token is rejected at construction."""
    with pytest.raises(ValueError):
        Chunker(bad)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int]:
    """Random streams: thought and answer text, growing or missing totals, maybe a finish."""
    chunk_token = draw(st.integers(1, 120))
    total = draw(st.integers(0, 50))
    events = []
    for _ in range(draw(st.integers(1, 25))):
        total += draw(st.integers(0, 90))
        text = draw(st.text(max_size=6))
        thought = draw(st.booleans()) and draw(st.booleans())
        has_usage = draw(st.integers(0, 4)) > 0
        events.append(event(text, total if has_usage else None, thought=thought))
    if draw(st.booleans()):
        reason = draw(st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY"]))
        events.append(event(draw(st.text(max_size=6)), total + draw(st.integers(0, 9)), reason))
    return events, chunk_token


@given(streams())
def test_every_random_stream_follows_the_rule(stream: tuple[list[dict[str, Any]], int]) -> None:
    """Property: chunk numbers, thresholds, growth and finality hold for any stream."""
    events, chunk_token = stream
    chunks = check_rule(events, chunk_token)
    contents = [c["content"] for c in chunks]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(contents))


@given(streams())
def test_delta_chunks_add_up_to_the_cumulative_ones(
    stream: tuple[list[dict[str, Any]], int],
) -> None:
    """content="delta": each chunk holds the text since the chunk before, otherwise the same."""
    events, chunk_token = stream
    cumulative, delta = Chunker(chunk_token), Chunker(chunk_token, content="delta")
    so_far = ""
    for item in events:
        whole, part = cumulative.feed(item), delta.feed(item)
        assert (whole is None) is (part is None)
        if whole is not None:
            so_far += part.pop("content")
            assert so_far == whole.pop("content") and part == whole
        if cumulative.done:
            break


def test_an_unknown_content_mode_is_rejected_at_construction() -> None:
    """Only cumulative and delta exist."""
    with pytest.raises(ValueError, match="cumulative, delta"):
        Chunker(50, content="diff")  # type: ignore[arg-type]
