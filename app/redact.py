"""Removing API keys from text the proxy writes out (error bodies, log lines).

Usage::

    redact('{"message": "Consumer api_key:AIza... suspended"}', secrets=config.api_keys)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Google API keys: "AIza" then 35 URL-safe characters. Caught even when not one of ours.
GEMINI_KEY = re.compile(r"AIza[0-9A-Za-z_-]{35}")
REPLACEMENT = "[REDACTED]"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return `text` with every listed secret and anything shaped like a Google key replaced."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REPLACEMENT)
    return GEMINI_KEY.sub(REPLACEMENT, text)
