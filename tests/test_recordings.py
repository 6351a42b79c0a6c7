"""Real Gemini streams recorded by others (../shared/gemini-recordings), parsed and chunked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.chunk_rules import answer_text, check_rule
from tests.events import sse_payloads

RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "gemini-recordings"
SSE_FILES = sorted(RECORDINGS.glob("*.sse")) if RECORDINGS.is_dir() else []
JSONL_FILES = sorted(RECORDINGS.glob("*.chunks.jsonl")) if RECORDINGS.is_dir() else []
CHUNK_TOKENS = [1, 7, 50, 1000]

needs_recordings = pytest.mark.skipif(
    not RECORDINGS.is_dir(), reason=f"no recordings folder at {RECORDINGS}: replay skipped"
)


def events_of(path: Path) -> list[dict]:
    return [json.loads(data) for data in sse_payloads([path.read_bytes()])]


@needs_recordings
def test_the_recordings_folder_holds_streams() -> None:
    """The replay below has something to replay."""
    assert SSE_FILES and JSONL_FILES


@needs_recordings
@pytest.mark.parametrize("path", SSE_FILES, ids=lambda p: p.name)
def test_recorded_streams_parse_the_same_whole_and_byte_by_byte(path: Path) -> None:
    """Every recorded stream splits into the same events however its bytes arrive."""
    raw = path.read_bytes()
    whole = sse_payloads([raw])
    assert whole, "a recording with no events"
    assert sse_payloads(raw[i : i + 1] for i in range(len(raw))) == whole


@needs_recordings
@pytest.mark.parametrize("chunk_token", CHUNK_TOKENS)
@pytest.mark.parametrize("path", SSE_FILES + JSONL_FILES, ids=lambda p: p.name)
def test_recorded_streams_follow_the_chunking_rule(path: Path, chunk_token: int) -> None:
    """Each recording, at several chunk sizes, obeys the rule and ends with all its answer text."""
    if path.suffix == ".sse":
        events = events_of(path)
    else:
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    chunks = check_rule(events, chunk_token)
    assert chunks, "every recording ends in a finishReason or a block, so it gives a chunk"
    assert chunks[-1]["is_complete"] is True
    assert chunks[-1]["content"] == answer_text(events)
