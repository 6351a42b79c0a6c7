"""Removing API keys from text the proxy writes out (error bodies, log lines).

Usage::

    redact("Consumer 'api_key:AIza...' suspended", secrets=config.api_keys)
    redact_json({"error": {"message": "..."}}, secrets=config.api_keys)  # every string inside
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# Google API keys: "AIza" then 35 URL-safe characters. Caught even when not one of ours.
GEMINI_KEY = re.compile(r"AIza[0-9A-Za-z_-]{35}")
REPLACEMENT = "[REDACTED]"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return `text` with every listed secret and anything shaped like a Google key replaced."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REPLACEMENT)
    return GEMINI_KEY.sub(REPLACEMENT, text)


def redact_json(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of a JSON-ready value with every string in it, keys too, redacted.

    Redacting the values before encoding, not the encoded text, keeps the JSON valid whatever
    a secret looks like.
    """
    secrets = tuple(secrets)
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact_json(k, secrets): redact_json(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(item, secrets) for item in value]
    return value
