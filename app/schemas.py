"""Validation of the client's request body: only what the proxy relies on.

Usage::

    validate_generate_request(raw_body)  # raises ApiError(400) naming the problem
    validate_model(name)                 # the same for a model named in the URL
    model = validate_openai_request(raw_body, "chat")  # an OpenAI-compatible body; its model

Everything else in a GenerateContentRequest (systemInstruction, tools, generationConfig,
snake_case spellings, fields newer than this proxy) is left alone: the raw bytes go to Gemini.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from marshmallow import INCLUDE, Schema, fields, validate

from .config import MODEL_NAME, MODEL_NAME_RULE
from .errors import ApiError

NON_EMPTY = validate.Length(min=1)
# marshmallow spends about 12 us per content and 2 us per part, in a worker every stream shares;
# these caps (far above real conversations) keep its share of one request under ~0.4 s.
MAX_CONTENTS = 10_000
MAX_PARTS = 50_000


class OpenSchema(Schema):
    """A schema that checks only its declared fields: the rest pass through to Gemini unchecked
    (snake_case spellings, fields newer than this proxy)."""

    class Meta:
        unknown = INCLUDE


class ContentSchema(OpenSchema):
    """One turn of the conversation: a role (optional) and its parts."""

    parts = fields.List(fields.Dict(), required=True, validate=NON_EMPTY)


class GenerateRequestSchema(OpenSchema):
    """A Gemini GenerateContentRequest; fields besides `contents` pass through unchecked."""

    contents = fields.List(fields.Nested(ContentSchema), required=True, validate=NON_EMPTY)


class EmbedRequestSchema(OpenSchema):
    """A Gemini EmbedContentRequest: the content to embed; the rest passes through unchecked."""

    content = fields.Nested(ContentSchema, required=True)


class BatchEmbedRequestSchema(OpenSchema):
    """A Gemini BatchEmbedContentsRequest: a non-empty list of EmbedContentRequests."""

    requests = fields.List(fields.Nested(EmbedRequestSchema), required=True, validate=NON_EMPTY)


class ChatRequestSchema(OpenSchema):
    """An OpenAI chat completion request: the messages; the rest passes through unchecked."""

    messages = fields.List(fields.Dict(), required=True, validate=NON_EMPTY)


class EmbeddingsRequestSchema(OpenSchema):
    """An OpenAI embeddings request: `input`, a non-empty string or list."""

    input = fields.Raw(required=True)


GENERATE_REQUEST = GenerateRequestSchema()
EMBED_REQUEST = EmbedRequestSchema()
BATCH_EMBED_REQUEST = BatchEmbedRequestSchema()
# The OpenAI-compatible bodies that are checked, by endpoint.
OpenAIEndpoint = Literal["chat", "embeddings"]
OPENAI_REQUESTS: dict[OpenAIEndpoint, Schema] = {
    "chat": ChatRequestSchema(),
    "embeddings": EmbeddingsRequestSchema(),
}
# OpenAI-compatible bodies name Gemini's model either bare or with Gemini's resource prefix.
MODEL_RESOURCE_PREFIX = "models/"


def validate_model(name: str) -> str:
    """`name`, when it is a model id safe in the upstream path; else ApiError(400) with the rule."""
    if not MODEL_NAME.fullmatch(name):
        raise ApiError(400, f"model {MODEL_NAME_RULE}")
    return name


def validate_generate_request(raw: bytes) -> None:
    """Parse and check a /generate body; raise ApiError(400) that names what is wrong."""
    body = _json_object(raw, "a GenerateContentRequest")
    contents = _check_count("contents", body.get("contents"))
    _check_parts("contents", contents)
    _check(GENERATE_REQUEST, body)


def validate_embed_request(raw: bytes) -> None:
    """Check an embedContent body (content with parts) as validate_generate_request does."""
    body = _json_object(raw, "an EmbedContentRequest")
    _check_parts("content", [body.get("content")])
    _check(EMBED_REQUEST, body)


def validate_batch_embed_request(raw: bytes) -> None:
    """Check a batchEmbedContents body: a non-empty list of requests, each with content."""
    body = _json_object(raw, "a BatchEmbedContentsRequest")
    requests = _check_count("requests", body.get("requests"))
    _check_parts(
        "requests", [entry.get("content") for entry in requests if isinstance(entry, dict)]
    )
    _check(BATCH_EMBED_REQUEST, body)


def validate_openai_request(raw: bytes, endpoint: OpenAIEndpoint) -> str:
    """Check an OpenAI-compatible body; return its model without Gemini's `models/` prefix.

    A JSON object with a valid `model`; chat's needs a non-empty `messages` list, embeddings'
    a non-empty `input`. Raises ApiError(400) naming what is wrong.
    """
    body = _json_object(raw, "an OpenAI request")
    model = body.get("model")
    if not isinstance(model, str):
        raise ApiError(400, "model: a model name is required, e.g. gemini-2.5-flash")
    _check_count("messages", body.get("messages"))
    _check(OPENAI_REQUESTS[endpoint], body)
    if endpoint == "embeddings" and (
        not isinstance(body["input"], str | list) or not body["input"]
    ):
        raise ApiError(400, "input: must be a non-empty string or list")
    return validate_model(model.removeprefix(MODEL_RESOURCE_PREFIX))


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ApiError(400, f"request body is not valid UTF-8 (byte {error.start})") from None
    try:
        body = json.loads(text)
    except RecursionError:
        raise ApiError(400, "request body is JSON nested too deeply") from None
    except ValueError as error:
        raise ApiError(400, f"request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"request body must be a JSON object ({what})")
    return body


def _check(schema: Schema, body: dict[str, Any]) -> None:
    # validate() only reports problems; the body is forwarded as the client sent it.
    problems = schema.validate(body)
    if problems:
        raise ApiError(400, f"invalid request body: {_describe(problems)}", fields=problems)


# The caps are checked before marshmallow is, so a huge body costs a count, not a validation.
def _check_count(field: str, entries: Any) -> list[Any]:
    """`entries` when a list of at most MAX_CONTENTS (else ApiError(400)); [] when no list."""
    if not isinstance(entries, list):
        return []
    if len(entries) > MAX_CONTENTS:
        raise ApiError(400, f"{field}: more than {MAX_CONTENTS} entries")
    return entries


def _check_parts(field: str, contents: list[Any]) -> None:
    """ApiError(400) when `contents` hold more than MAX_PARTS parts in all."""
    parts = sum(
        len(content["parts"])
        for content in contents
        if isinstance(content, dict) and isinstance(content.get("parts"), list)
    )
    if parts > MAX_PARTS:
        raise ApiError(400, f"{field}: more than {MAX_PARTS} parts in all")


def _describe(problems: dict[str, Any], path: str = "") -> str:
    parts = []
    for name, problem in problems.items():
        # marshmallow files whole-object type errors under "_schema"; name the object instead.
        where = path if name == "_schema" else f"{path}.{name}" if path else str(name)
        if isinstance(problem, dict):
            parts.append(_describe(problem, where))
        else:
            parts.append(f"{where}: {' '.join(map(str, problem))}")
    return "; ".join(parts)
