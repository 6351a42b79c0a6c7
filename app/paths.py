"""The URL prefixes the proxy serves, shared by the routes, the metrics' route label and the 404.

Usage::

    request.path.startswith(OPENAI_PREFIX + "/")
"""

from __future__ import annotations

GENERATE_PATH = "/generate"
# Gemini's REST API versions, each served under its own prefix and passed to the same upstream.
API_VERSIONS = ("v1", "v1beta")
# Gemini's OpenAI-compatible API, passed on under the same path.
OPENAI_PREFIX = "/v1beta/openai"
# What an unknown path is told the proxy serves.
SERVED_PREFIXES = (GENERATE_PATH, "/v1beta/...", "/v1/...", OPENAI_PREFIX + "/...")
