"""Gemini stream events and their SSE framing, built by hand for the unit tests.

Usage::

    reads = sse(text_event("Hi", 12), text_event(" there", 25, "STOP"))
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from app.sse import SSEDecoder


def sse(*events: dict) -> list[bytes]:
    """Each event as one SSE read, framed as Gemini frames it (CRLF CRLF)."""
    return [f"data: {json.dumps(event)}\r\n\r\n".encode() for event in events]


def text_event(text: str, total: int, finish: str | None = None) -> dict:
    """An event adding `text`, with the cumulative totalTokenCount and maybe a finishReason."""
    candidate: dict = {"content": {"parts": [{"text": text}]}}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": {"totalTokenCount": total}}


def sse_payloads(reads: Iterable[bytes]) -> list[str]:
    """The data of every event in `reads`, fed to app.sse's decoder read by read, as the relay
    feeds it, and the decoder closed after the last."""
    decoder = SSEDecoder()
    return [data for read in reads for data in decoder.feed(read)] + decoder.close()
