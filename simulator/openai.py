"""Gemini's OpenAI-compatible API (/v1beta/openai/) as Gemini shapes it: chat completions and
their streamed chunks made from the native answer's events, embeddings and the model list.
Pure: no pacing, sockets or clock (the caller gives `created`).

Gemini writes these objects with their keys in alphabetical order; so do these functions. On
this path Gemini leaves thoughts out of the answer unless asked, and (unlike OpenAI) streams no
role-only first chunk: every chunk carries `"role": "assistant"`, the last one finish_reason and
usage.

Usage::

    events = sse_events(Behaviour(events=3), model="gemini-2.5-flash")
    chunks = list(chat_chunks(events, model="gemini-2.5-flash", created=1750000000))
"""

import json
from collections.abc import Iterable, Iterator
from typing import Any

from simulator.answers import merge_events
from simulator.embeddings import checked_dimensions, embedding_values
from simulator.models import model_ids

MODEL_PREFIX = "models/"
OWNER = "google"
ASSISTANT = "assistant"
# Gemini's finishReason as OpenAI's finish_reason; any other reason reads as "stop".
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "BLOCKLIST": "content_filter",
    "SPII": "content_filter",
}
DEFAULT_FINISH_REASON = "stop"
# A blocked prompt has no answer to finish; OpenAI's word for that is content_filter.
BLOCKED_FINISH_REASON = "content_filter"
TOOL_CALLS_FINISH_REASON = "tool_calls"
TOOL_CALL_ID = "function-call-{index}"


def bare_model(model: Any) -> str | None:
    """A request's model without Gemini's `models/` prefix (both forms are accepted); None if
    there is no model string."""
    return model.removeprefix(MODEL_PREFIX) if isinstance(model, str) and model else None


def check_chat_request(body: dict[str, Any]) -> None:
    """Raise ValueError, worded as Gemini words it, for a chat body without model or messages."""
    if bare_model(body.get("model")) is None:
        raise ValueError("model is not specified")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")


def message_tokens(body: Any) -> int:
    """Count one token per word of the text in a chat request's messages (at least 1)."""
    messages = body.get("messages") if isinstance(body, dict) else None
    words = 0
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        pieces = content if isinstance(content, list) else [content]
        for piece in pieces:
            text = piece.get("text") if isinstance(piece, dict) else piece
            if isinstance(text, str):
                words += len(text.split())
    return max(words, 1)


def chat_chunks(
    events: Iterable[dict[str, Any]], *, model: str, created: int, tools: bool = False
) -> Iterator[dict[str, Any]]:
    """Yield the chat.completion.chunk objects of a streamed answer, one per answer event.

    Events with nothing to say on this path (thoughts only) yield no chunk. functionCall parts
    become tool_calls when the request offered `tools`. Like Gemini (python-genai#2868), the
    streamed finish_reason stays "stop" after a tool call, where the whole answer says tool_calls.
    """
    calls = 0
    for event in events:
        if "candidates" not in event:
            yield _chunk(event, model, created, _blocked_choice(delta=True), usage=True)
            continue
        candidate = event["candidates"][0]
        text, tool_calls = _answer_parts(candidate, tools, first_call=calls)
        calls += len(tool_calls)
        finish = candidate.get("finishReason")
        if not text and not tool_calls and finish is None:
            continue
        delta: dict[str, Any] = {"content": text} if text else {}
        delta["role"] = ASSISTANT
        if tool_calls:
            # A streamed tool call says which of the answer's calls it is.
            first = calls - len(tool_calls)
            delta["tool_calls"] = [
                dict(sorted({**call, "index": first + n}.items()))
                for n, call in enumerate(tool_calls)
            ]
        choice: dict[str, Any] = {"delta": delta}
        if finish is not None:
            choice["finish_reason"] = FINISH_REASONS.get(finish, DEFAULT_FINISH_REASON)
        choice["index"] = 0
        yield _chunk(event, model, created, choice, usage=finish is not None)


def chat_completion(
    events: Iterable[dict[str, Any]], *, model: str, created: int, tools: bool = False
) -> dict[str, Any]:
    """Return the chat.completion object of an answer that is not streamed."""
    answer = merge_events(events)
    if "candidates" not in answer:
        return _chunk(answer, model, created, _blocked_choice(delta=False), usage=True, whole=True)
    candidate = answer["candidates"][0]
    text, tool_calls = _answer_parts(candidate, tools, first_call=0)
    message: dict[str, Any] = {"content": text} if text else {}
    message["role"] = ASSISTANT
    if tool_calls:
        message["tool_calls"] = tool_calls
        finish = TOOL_CALLS_FINISH_REASON
    else:
        finish = FINISH_REASONS.get(candidate.get("finishReason"), DEFAULT_FINISH_REASON)
    choice = {"finish_reason": finish, "index": 0, "message": message}
    return _chunk(answer, model, created, choice, usage=True, whole=True)


def embedding_list(body: dict[str, Any]) -> dict[str, Any]:
    """Answer POST embeddings: one embedding object per input text, OpenAI's list around them.

    Raise ValueError for a body without model, or whose input is not a text or list of texts.
    """
    model = bare_model(body.get("model"))
    if model is None:
        raise ValueError("model is not specified")
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("input must be a string or a non-empty list of strings")
    dimensions = checked_dimensions(body.get("dimensions"), "dimensions")
    tokens = sum(max(len(text.split()), 1) for text in texts)
    return {
        "data": [
            {"embedding": embedding_values(text, dimensions), "index": index, "object": "embedding"}
            for index, text in enumerate(texts)
        ],
        "model": model,
        "object": "list",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def model_list() -> dict[str, Any]:
    """Answer GET models: every listed model, named as Gemini names it (`models/...`)."""
    return {"data": [model_object(model) for model in model_ids()], "object": "list"}


def model_object(model: str) -> dict[str, Any] | None:
    """Answer GET models/{model}: OpenAI's model object, or None for a model not listed."""
    if model not in model_ids():
        return None
    return {"id": MODEL_PREFIX + model, "object": "model", "owned_by": OWNER}


def _answer_parts(
    candidate: dict[str, Any], tools: bool, *, first_call: int
) -> tuple[str, list[dict[str, Any]]]:
    """The answer text (thoughts left out) and, if tools were offered, the tool calls."""
    parts = candidate.get("content", {}).get("parts") or []
    text = "".join(
        part["text"]
        for part in parts
        if isinstance(part.get("text"), str) and not part.get("thought")
    )
    calls = [part["functionCall"] for part in parts if tools and "functionCall" in part]
    return text, [
        {
            "function": {
                "arguments": json.dumps(call.get("args", {}), ensure_ascii=False),
                "name": call.get("name", ""),
            },
            "id": TOOL_CALL_ID.format(index=first_call + n),
            "type": "function",
        }
        for n, call in enumerate(calls)
    ]


def _blocked_choice(*, delta: bool) -> dict[str, Any]:
    said = {"delta" if delta else "message": {"role": ASSISTANT}}
    choice = {**said, "finish_reason": BLOCKED_FINISH_REASON, "index": 0}
    return dict(sorted(choice.items()))


def _chunk(
    event: dict[str, Any],
    model: str,
    created: int,
    choice: dict[str, Any],
    *,
    usage: bool,
    whole: bool = False,
) -> dict[str, Any]:
    """The envelope Gemini puts around a choice: its id is the native answer's responseId."""
    chunk = {
        "choices": [choice],
        "created": created,
        "id": event.get("responseId", ""),
        "model": model,
        "object": "chat.completion" if whole else "chat.completion.chunk",
    }
    if usage:
        metadata = event.get("usageMetadata", {})
        prompt = metadata.get("promptTokenCount", 0)
        chunk["usage"] = {
            "completion_tokens": metadata.get("candidatesTokenCount", 0),
            "prompt_tokens": prompt,
            "total_tokens": metadata.get("totalTokenCount", prompt),
        }
    return chunk
