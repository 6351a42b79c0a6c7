"""The models the simulator knows: GET /v1beta/models, page by page, and one model's description.

Usage::

    page = list_models({"pageSize": ["2"]})  # a query as urllib.parse.parse_qs reads it
    info = model_info("gemini-embedding-001")
"""

from typing import Any

# The simulator's own model: listed, and quoted wherever a call names none (GET /v1beta/models).
DEFAULT_MODEL = "gemini-sim"

# GET /v1beta/models lists these ids in this order, then EMBEDDING_MODELS; any other id is a 404.
MODELS: dict[str, tuple[str, str]] = {
    "gemini-2.5-flash": (
        "Gemini 2.5 Flash",
        "Stable version of Gemini 2.5 Flash, our mid-size multimodal model that supports up to "
        "1 million tokens, released in June of 2025.",
    ),
    "gemini-2.5-pro": (
        "Gemini 2.5 Pro",
        "Stable release (June 17th, 2025) of Gemini 2.5 Pro",
    ),
    DEFAULT_MODEL: (
        "Gemini Simulator",
        "The local simulator's own model: scripted answers, one token per word.",
    ),
}
# Embedding models, listed after the generative ones: (version, displayName, methods).
EMBEDDING_MODELS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "gemini-embedding-001": (
        "001",
        "Gemini Embedding 001",
        ("embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"),
    ),
    "text-embedding-004": ("004", "Text Embedding 004", ("embedContent",)),
}
EMBEDDING_DESCRIPTION = "Obtain a distributed representation of a text."
EMBEDDING_INPUT_TOKEN_LIMIT = 2048
# Gemini's own figure: an embedding model "outputs" one token.
EMBEDDING_OUTPUT_TOKEN_LIMIT = 1
# The fields every listed generative model shares, as Gemini describes its 2.5 models.
MODEL_VERSION = "001"
MODEL_INPUT_TOKEN_LIMIT = 1_048_576
MODEL_OUTPUT_TOKEN_LIMIT = 65_536
MODEL_GENERATION_METHODS = ("generateContent", "countTokens", "streamGenerateContent")
MODEL_TEMPERATURE = 1
MODEL_TOP_P = 0.95
MODEL_TOP_K = 64
MODEL_MAX_TEMPERATURE = 2
DEFAULT_PAGE_SIZE = 50
# Gemini caps pageSize at 1000 and reads 0 (or no pageSize) as its default.
MAX_PAGE_SIZE = 1000


def model_ids() -> list[str]:
    """Every listed model id in list order: the generative models, then the embedding ones."""
    return [*MODELS, *EMBEDDING_MODELS]


def model_info(model: str) -> dict[str, Any] | None:
    """Return Gemini's description of a listed model id, or None for an unknown one."""
    if model in EMBEDDING_MODELS:
        version, display_name, methods = EMBEDDING_MODELS[model]
        return {
            "name": f"models/{model}",
            "version": version,
            "displayName": display_name,
            "description": EMBEDDING_DESCRIPTION,
            "inputTokenLimit": EMBEDDING_INPUT_TOKEN_LIMIT,
            "outputTokenLimit": EMBEDDING_OUTPUT_TOKEN_LIMIT,
            "supportedGenerationMethods": list(methods),
        }
    if model not in MODELS:
        return None
    display_name, description = MODELS[model]
    return {
        "name": f"models/{model}",
        "version": MODEL_VERSION,
        "displayName": display_name,
        "description": description,
        "inputTokenLimit": MODEL_INPUT_TOKEN_LIMIT,
        "outputTokenLimit": MODEL_OUTPUT_TOKEN_LIMIT,
        "supportedGenerationMethods": list(MODEL_GENERATION_METHODS),
        "temperature": MODEL_TEMPERATURE,
        "topP": MODEL_TOP_P,
        "topK": MODEL_TOP_K,
        "maxTemperature": MODEL_MAX_TEMPERATURE,
        "thinking": True,
    }


def list_models(query: dict[str, list[str]]) -> dict[str, Any]:
    """Return the page of GET /v1beta/models that pageSize and pageToken ask for.

    The page token is the position of the page's first model: opaque to clients, as Gemini's
    are. Raise ValueError, with Gemini's wording, for a malformed size or an unknown token.
    """
    size_text = query.get("pageSize", [""])[-1]
    token = query.get("pageToken", [""])[-1]
    if size_text and not size_text.isdecimal():
        raise ValueError(f"Invalid value at 'page_size' (TYPE_INT32), \"{size_text}\"")
    size = min(int(size_text or 0) or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    ids = model_ids()
    if token and not (token.isdecimal() and int(token) < len(ids)):
        raise ValueError("Invalid page token.")
    start = int(token or 0)
    page: dict[str, Any] = {"models": [model_info(model) for model in ids[start : start + size]]}
    if start + size < len(ids):
        page["nextPageToken"] = str(start + size)
    return page
