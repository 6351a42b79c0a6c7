"""What the simulator's tests share: the calls they make and readers of Gemini's bodies.

The readers check Gemini's framing to the byte as they split a body, so a test that reads a
body has checked its framing too.

Usage::

    events = parse_sse(response.raw.read())
    assert texts(candidate_events(events)) == ...
"""

from __future__ import annotations

import json
from typing import Any

from simulator import Behaviour, embedding_values, sse_events
from tests.servers import configure

STREAM_PATH = "/v1beta/models/gemini-test:streamGenerateContent"
GENERATE_PATH = "/v1beta/models/gemini-test:generateContent"
COUNT_PATH = "/v1beta/models/gemini-test:countTokens"
EMBED_PATH = "/v1beta/models/gemini-embedding-001:embedContent"
BATCH_EMBED_PATH = "/v1beta/models/gemini-embedding-001:batchEmbedContents"
OPENAI_PREFIX = "/v1beta/openai/"
CHAT_PATH = OPENAI_PREFIX + "chat/completions"
OPENAI_EMBEDDINGS_PATH = OPENAI_PREFIX + "embeddings"
OPENAI_MODELS_PATH = OPENAI_PREFIX + "models"
LISTED_MODELS = [
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "gemini-sim",
    "gemini-embedding-001",
    "text-embedding-004",
]
EMBEDDING_MODEL = "gemini-embedding-001"
EMBEDDED_TEXTS = ["first text", "second"]
EMBEDDING_SIZE = 8


def embed_with_sdk(client: Any) -> None:
    """google-genai's embed_content of EMBEDDED_TEXTS gets the simulator's values for each."""
    embedded = client.models.embed_content(
        model=EMBEDDING_MODEL,
        contents=EMBEDDED_TEXTS,
        config={"output_dimensionality": EMBEDDING_SIZE},
    )
    assert [each.values for each in embedded.embeddings] == [
        embedding_values(text, EMBEDDING_SIZE) for text in EMBEDDED_TEXTS
    ]


def tool_call_with_sdk(client: Any, sim: str, streamed: bool) -> None:
    """The openai SDK, tools offered, gets the simulator's scripted functionCall as its one tool
    call, from a whole or a streamed chat completion."""
    call = {"functionCall": {"name": "lookup", "args": {"q": "café"}}}
    configure(sim, {"default": {"parts_extra": [call]}})
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    request = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "q"}]}
    if streamed:
        with client.chat.completions.stream(**request, tools=tools) as stream:
            message = stream.get_final_completion().choices[0].message
    else:
        message = client.chat.completions.create(**request, tools=tools).choices[0].message
    (tool_call,) = message.tool_calls
    assert tool_call.function.name == "lookup"
    assert json.loads(tool_call.function.arguments) == {"q": "café"}


# Three words: three prompt tokens, as the simulator counts them.
PROMPT = {"contents": [{"role": "user", "parts": [{"text": "say something nice"}]}]}
RPC = "type.googleapis.com/google.rpc."
UNAVAILABLE_BODY = {
    "error": {
        "code": 503,
        "message": "The model is overloaded. Please try again later.",
        "status": "UNAVAILABLE",
    }
}
CUSTOM_ERROR = {
    "error": {"code": 429, "message": "slow down, café 🚀", "status": "RESOURCE_EXHAUSTED"}
}


def parse_sse(raw: bytes) -> list[dict[str, Any]]:
    """Split a raw SSE body on CRLF CRLF, insisting that every event is `data: {json}`."""
    *frames, tail = raw.split(b"\r\n\r\n")
    assert tail == b""
    assert all(frame.startswith(b"data: {") and b"\n" not in frame for frame in frames)
    return [json.loads(frame.removeprefix(b"data: ")) for frame in frames]


def parse_array(raw: bytes) -> list[dict[str, Any]]:
    """Split a complete JSON-array stream into its events, insisting on Gemini's exact framing."""
    assert raw.startswith(b"[{") and raw.endswith(b"}\n]")
    frames = raw[1:-2].split(b"\n,\r\n")
    assert all(frame.startswith(b"{") and b"\n" not in frame for frame in frames)
    events = [json.loads(frame) for frame in frames]
    assert json.loads(raw) == events
    return events


def parse_openai_sse(raw: bytes) -> list[dict[str, Any]]:
    """Split a whole OpenAI-compatible stream on LF LF, insisting on `data: {json}` events and
    a last `data: [DONE]`; return the events before it."""
    *frames, done, tail = raw.split(b"\n\n")
    assert (done, tail) == (b"data: [DONE]", b"")
    assert all(frame.startswith(b"data: {") and b"\n" not in frame for frame in frames)
    return [json.loads(frame.removeprefix(b"data: ")) for frame in frames]


def candidate_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the events that carry a candidate."""
    return [event for event in events if "candidates" in event]


def texts(events: list[dict[str, Any]]) -> list[str]:
    """Return the text of each event's first part."""
    return [event["candidates"][0]["content"]["parts"][0]["text"] for event in events]


def answer_text(behaviour: Behaviour) -> str:
    """The answer text (thoughts left out) that the simulator streams for a behaviour."""
    return "".join(
        part["text"]
        for event in candidate_events(list(sse_events(behaviour)))
        for part in event["candidates"][0]["content"]["parts"]
        if "text" in part and not part.get("thought")
    )


def detail(error: dict[str, Any], kind: str) -> dict[str, Any]:
    """Return the one detail of a google.rpc type (e.g. "QuotaFailure") in a Gemini error."""
    (found,) = [each for each in error["error"]["details"] if each["@type"] == RPC + kind]
    return found
