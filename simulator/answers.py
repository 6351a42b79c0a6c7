"""What the simulator answers: the events of one generation, the error that may end them, and
generateContent's single answer merged from them. Pure: no pacing, sockets or clock.

Usage::

    events = list(sse_events(Behaviour(events=3), model="gemini-2.5-flash", prompt_tokens=4))
    answer = merge_events(events)
"""

import re
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import Any

from simulator.behaviour import Behaviour
from simulator.errors import gemini_error
from simulator.models import DEFAULT_MODEL

# Events built outside a call have this responseId; the server makes a random one per call.
DEFAULT_RESPONSE_ID = "sim-response"
# Multi-byte words (2-byte "é"/"ï", 4-byte emoji) make clients deal with UTF-8 split across reads.
ANSWER_TEXT = (
    "the quick proxy streams every chunk of tokens to a patient client while the café "
    "serves naïve benchmarks under steady load 🚀 and each counter stays honest until "
    "the final word arrives safely home"
)
THOUGHT_TEXT = (
    "first consider what the user really asks then weigh the options and plan a short "
    "clear answer step by step"
)
ANSWER_WORDS = tuple(ANSWER_TEXT.split())
THOUGHT_WORDS = tuple(THOUGHT_TEXT.split())


def count_prompt_tokens(body: Any) -> int:
    """Count one token per word in the text parts of a request's contents (at least 1)."""
    contents = body.get("contents") if isinstance(body, dict) else None
    words = 0
    for content in contents if isinstance(contents, list) else []:
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                words += len(part["text"].split())
    return max(words, 1)


def answer_events(
    behaviour: Behaviour, *, model: str, prompt_tokens: int, response_id: str
) -> Iterator[dict[str, Any]]:
    """Yield the events of one answer up to error_event_after, without the error that ends it."""
    envelope = {"modelVersion": model, "responseId": response_id}
    if behaviour.block_reason is not None:
        usage = {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens}
        feedback = {"blockReason": behaviour.block_reason}
        yield {"promptFeedback": feedback, "usageMetadata": usage, **envelope}
        return
    thoughts = _word_pieces(THOUGHT_WORDS, behaviour.thought_events, behaviour.words_per_event)
    answers = _answer_texts(behaviour)
    steps = [(True, text) for text in thoughts] + [(False, text) for text in answers]
    sent = steps if behaviour.error_event_after is None else steps[: behaviour.error_event_after]
    thought_tokens = answer_tokens = 0
    for index, (is_thought, text) in enumerate(sent):
        is_last = index == len(steps) - 1
        if is_thought:
            thought_tokens += len(text.split())
            parts = [{"text": text, "thought": True}]
        else:
            answer_tokens += len(text.split())
            parts = [{"text": text}]
        if is_last and behaviour.parts_extra:
            parts += behaviour.parts_extra
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if is_last and behaviour.finish_reason is not None:
            candidate["finishReason"] = behaviour.finish_reason
        candidate["index"] = 0
        usage = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": answer_tokens,
            "totalTokenCount": prompt_tokens + answer_tokens + thought_tokens,
        }
        if behaviour.thought_events:
            usage["thoughtsTokenCount"] = thought_tokens
        yield {"candidates": [candidate], "usageMetadata": usage, **envelope}


def stream_error(behaviour: Behaviour) -> dict[str, Any] | None:
    """Return the error that ends a stream after error_event_after events, or None."""
    if behaviour.error_event_after is None or behaviour.block_reason is not None:
        return None
    if behaviour.error_body is None:
        return gemini_error(HTTPStatus.SERVICE_UNAVAILABLE)
    # A copy: stamping the event must not write into the configured body.
    return dict(behaviour.error_body)


def sse_events(
    behaviour: Behaviour | None = None,
    *,
    model: str = DEFAULT_MODEL,
    prompt_tokens: int = 1,
    response_id: str = DEFAULT_RESPONSE_ID,
) -> Iterator[dict[str, Any]]:
    """Yield the events of one streamed answer, without pacing, cuts or timestamps."""
    behaviour = behaviour or Behaviour()
    yield from answer_events(
        behaviour, model=model, prompt_tokens=prompt_tokens, response_id=response_id
    )
    error = stream_error(behaviour)
    if error is not None:
        yield error


def merge_events(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Merge a stream's events into generateContent's one answer, as Gemini does.

    Consecutive text parts of the same kind (answer or thought) join into one part; other parts
    (parts_extra) follow as they came. The last event's usage, feedback and finishReason win.
    """
    merged: dict[str, Any] = {}
    parts: list[dict[str, Any]] = []
    finish_reason = None
    answered = False
    for event in events:
        for candidate in event.get("candidates") or ():
            answered = True
            finish_reason = candidate.get("finishReason", finish_reason)
            for part in candidate.get("content", {}).get("parts") or ():
                if parts and _joins(parts[-1], part):
                    parts[-1]["text"] += part["text"]
                else:
                    parts.append(dict(part))
        merged.update({name: value for name, value in event.items() if name != "candidates"})
    if not answered:
        return merged
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if finish_reason is not None:
        candidate["finishReason"] = finish_reason
    candidate["index"] = 0
    return {"candidates": [candidate], **merged}


def _word_pieces(words: tuple[str, ...], count: int, per_piece: int) -> list[str]:
    pieces = [
        " ".join(words[(index * per_piece + offset) % len(words)] for offset in range(per_piece))
        for index in range(count)
    ]
    # Like Gemini's chunks, every piece but the first brings its own leading space.
    return [piece if index == 0 else " " + piece for index, piece in enumerate(pieces)]


def _answer_texts(behaviour: Behaviour) -> list[str]:
    if behaviour.text is None:
        return _word_pieces(ANSWER_WORDS, behaviour.events, behaviour.words_per_event)
    return _split_text(behaviour.text, behaviour.events)


def _split_text(text: str, count: int) -> list[str]:
    """Split text at word starts into `count` pieces that join back to exactly `text`."""
    if count == 0:
        return []
    words = re.findall(r"\s*\S+", text)
    pieces = [
        "".join(words[index * len(words) // count : (index + 1) * len(words) // count])
        for index in range(count)
    ]
    pieces[-1] += text[len("".join(words)) :]
    return pieces


def _joins(earlier: dict[str, Any], part: dict[str, Any]) -> bool:
    """Tell whether `part` continues the text of `earlier`: both plain text of the same kind."""
    plain = all(
        isinstance(each.get("text"), str) and set(each) <= {"text", "thought"}
        for each in (earlier, part)
    )
    return plain and earlier.get("thought") == part.get("thought")
