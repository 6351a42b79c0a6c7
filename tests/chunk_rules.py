"""The chunking contract as checks on a stream's events and the chunks they gave.

Shared by the property tests and the replay of recorded Gemini streams.
"""

from __future__ import annotations

from typing import Any

from app.chunker import Chunker


def answer_text(events: list[dict[str, Any]]) -> str:
    """All non-thought text of the first candidate, in order."""
    text = []
    for event in events:
        for candidate in (event.get("candidates") or [])[:1]:
            for part in (candidate.get("content") or {}).get("parts") or []:
                if "text" in part and not part.get("thought"):
                    text.append(part["text"])
    return "".join(text)


def run(events: list[dict[str, Any]], chunk_token: int) -> list[tuple[int, dict[str, Any]]]:
    """Feed the events in order; return (event index, chunk) for every chunk made."""
    chunker = Chunker(chunk_token)
    made = []
    for index, event in enumerate(events):
        chunk = chunker.feed(event)
        if chunk is not None:
            made.append((index, chunk))
        if chunker.done:
            break
    return made


def check_rule(events: list[dict[str, Any]], chunk_token: int) -> list[dict[str, Any]]:
    """Assert every clause of the chunking rule over one stream; return its chunks."""
    made = run(events, chunk_token)
    chunks = [chunk for _, chunk in made]
    assert [c["chunk_number"] for c in chunks] == list(range(1, len(chunks) + 1))
    indexes = [index for index, _ in made]
    assert len(indexes) == len(set(indexes)), "at most one chunk per event"

    threshold, previous, total = chunk_token, "", None
    chunk_at = dict(made)
    for index, event in enumerate(events):
        usage = event.get("usageMetadata") or {}
        total = usage.get("totalTokenCount", total)
        candidates = event.get("candidates") or []
        finished = bool(candidates and candidates[0].get("finishReason")) or bool(
            not candidates and (event.get("promptFeedback") or {}).get("blockReason")
        )
        text_so_far = answer_text(events[: index + 1])
        chunk = chunk_at.get(index)
        if finished:
            assert chunk is not None and chunk["is_complete"] is True
            assert chunk["content"] == text_so_far
            assert chunk["finish_reason"] in (
                candidates[0].get("finishReason") if candidates else None,
                (event.get("promptFeedback") or {}).get("blockReason"),
            )
            assert chunk["total_tokens"] == total
            assert index == len(events) - 1 or chunks[-1] is chunk
            return chunks
        due = total is not None and total >= threshold and len(text_so_far) > len(previous)
        assert (chunk is not None) == due, f"event {index}: total {total}, threshold {threshold}"
        if chunk is not None:
            assert chunk["is_complete"] is False
            assert chunk["content"] == text_so_far
            assert chunk["total_tokens"] == total
            assert "finish_reason" not in chunk
            threshold = (total // chunk_token + 1) * chunk_token
            previous = text_so_far
    assert all(not c["is_complete"] for c in chunks)
    return chunks
