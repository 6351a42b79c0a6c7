"""Gemini's embeddings: made-up but deterministic vectors for texts, and the native
embedContent and batchEmbedContents answers. Pure: no sockets or clock.

Usage::

    answer = embed_content({"content": {"parts": [{"text": "hello"}]}})
    values = answer["embedding"]["values"]  # the same numbers for "hello", every time
"""

import hashlib
from typing import Any

# gemini-embedding-001 answers 3072 values by default; 768 (text-embedding-004's size, and one
# of Gemini's recommended sizes) keeps test bodies small.
DEFAULT_DIMENSIONS = 768
MAX_DIMENSIONS = 3072
# Each value comes from two bytes of the text's SHAKE-256 stream, mapped into [-1, 1).
BYTES_PER_VALUE = 2
VALUE_SCALE = 2 ** (8 * BYTES_PER_VALUE - 1)
VALUE_DIGITS = 6


def embedding_values(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """Return the embedding of a text: `dimensions` values in [-1, 1), the same for the same text.

    Like Gemini's Matryoshka embeddings, a shorter embedding of a text is the start of a longer one.
    """
    stream = hashlib.shake_256(text.encode()).digest(dimensions * BYTES_PER_VALUE)
    return [
        round(int.from_bytes(stream[at : at + BYTES_PER_VALUE]) / VALUE_SCALE - 1, VALUE_DIGITS)
        for at in range(0, len(stream), BYTES_PER_VALUE)
    ]


def checked_dimensions(value: Any, field: str) -> int:
    """Return a requested embedding size (None: the default); raise ValueError, Gemini-worded."""
    if value is None:
        return DEFAULT_DIMENSIONS
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_DIMENSIONS:
        raise ValueError(f"{field} must be a whole number from 1 to {MAX_DIMENSIONS}.")
    return value


def content_text(content: Any) -> str:
    """Return the text of a Gemini Content: its text parts, joined by newlines."""
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        raise ValueError("* EmbedContentRequest.content: contents is not specified")
    return "\n".join(
        part["text"]
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    )


def embed_content(body: dict[str, Any]) -> dict[str, Any]:
    """Answer embedContent: `{"embedding": {"values": [...]}}`. Raise ValueError for a bad body."""
    dimensions = checked_dimensions(body.get("outputDimensionality"), "outputDimensionality")
    return {
        "embedding": {"values": embedding_values(content_text(body.get("content")), dimensions)}
    }


def batch_embed_contents(body: dict[str, Any]) -> dict[str, Any]:
    """Answer batchEmbedContents: one `{"values": [...]}` per request, in order."""
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise ValueError("* BatchEmbedContentsRequest.requests: requests is not specified")
    if not all(isinstance(request, dict) for request in requests):
        raise ValueError("Invalid JSON payload received. Each request must be an object.")
    return {"embeddings": [embed_content(request)["embedding"] for request in requests]}
