"""The chunking rule: Gemini stream events in, the client's token-count chunks out.

Usage::

    chunker = Chunker(chunk_token=50)  # content="delta": each chunk only the text added since

    for event in events:
        chunk = chunker.feed(event)  # a dict to send, or None
        if chunker.done:
            break

The rule, exactly:
- answer text is the `text` of every part whose `thought` is not true, in order;
- the total is the event's `usageMetadata.totalTokenCount`, the last one seen when it lacks one;
- an event carrying a `finishReason` (or a prompt `blockReason`) gives the final chunk;
- otherwise a chunk goes out when total >= threshold and the answer text grew since the last
  chunk; the threshold starts at `chunk_token` and then becomes the next multiple above the total;
- at most one chunk per event; non-text parts ride on the final chunk as `parts`.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

Chunk = dict[str, Any]
# What a chunk's `content` holds: all answer text so far (the specification's), or only the
# text added since the chunk before.
Content = Literal["cumulative", "delta"]
CONTENTS: tuple[Content, ...] = get_args(Content)
# The text's UTF-8 keeps a lone surrogate that Gemini's JSON escaped (\ud800), for
# app.relay.encode to pass on escaped as it came.
TEXT_ERRORS = "surrogatepass"


class Chunker:
    """Applies the chunking rule to one stream; not reusable across streams."""

    def __init__(self, chunk_token: int, content: Content = "cumulative") -> None:
        if chunk_token < 1:
            raise ValueError(f"chunk_token must be a positive integer, got {chunk_token!r}")
        if content not in CONTENTS:
            raise ValueError(f"content must be one of {', '.join(CONTENTS)}, got {content!r}")
        self.chunk_token = chunk_token
        self.delta = content == "delta"
        self.threshold = chunk_token
        self.chunks_sent = 0
        self.total_tokens: int | None = None
        self.prompt_tokens: int | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False
        # The answer text so far as UTF-8, kept for as long as the stream lasts: joined into one
        # str, a single emoji would make every character of it take 4 bytes.
        self._text = bytearray()
        self._length_at_last_chunk = 0
        self._other_parts: list[Any] = []

    def feed(self, event: dict[str, Any]) -> Chunk | None:
        """Take one decoded event; return the chunk it triggers, if any."""
        if self.done:
            raise ValueError("the stream already ended with a final chunk")
        usage = event.get("usageMetadata")
        if isinstance(usage, dict):
            self.usage = usage
            self.total_tokens = usage.get("totalTokenCount", self.total_tokens)
            self.prompt_tokens = usage.get("promptTokenCount", self.prompt_tokens)

        candidates = event.get("candidates") or ()
        candidate = candidates[0] if candidates else {}
        for part in (candidate.get("content") or {}).get("parts") or ():
            if "text" not in part:
                self._other_parts.append(part)
            elif not part.get("thought"):
                self._text += part["text"].encode(errors=TEXT_ERRORS)

        finish_reason = candidate.get("finishReason")
        feedback = event.get("promptFeedback")
        block_reason = None if candidates or not feedback else feedback.get("blockReason")
        if finish_reason or block_reason:
            return self._final(finish_reason or block_reason, feedback)

        total = self.total_tokens
        grew = len(self._text) > self._length_at_last_chunk
        if total is None or total < self.threshold or not grew:
            return None
        self.threshold = (total // self.chunk_token + 1) * self.chunk_token
        return self._chunk(is_complete=False)

    def _final(self, reason: str, prompt_feedback: Any) -> Chunk:
        self.done = True
        chunk = self._chunk(is_complete=True)
        chunk["finish_reason"] = reason
        chunk["usage"] = self.usage or {}
        if self._other_parts:
            chunk["parts"] = self._other_parts
        if prompt_feedback:
            chunk["prompt_feedback"] = prompt_feedback
        return chunk

    def _chunk(self, is_complete: bool) -> Chunk:
        self.chunks_sent += 1
        since = self._length_at_last_chunk if self.delta else 0
        self._length_at_last_chunk = len(self._text)
        return {
            # Parts end on whole characters, so the bytes since the last chunk decode alone.
            "content": self._text[since:].decode(errors=TEXT_ERRORS),
            "is_complete": is_complete,
            "chunk_number": self.chunks_sent,
            "total_tokens": self.total_tokens,
        }
