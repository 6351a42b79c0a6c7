"""What Gemini's error answers mean for the key: the classification table."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.classify import MAX_COOLDOWN, MIN_COOLDOWN, UPSTREAM_FAULT, Verdict, classify
from app.errors import parse_gemini_error

RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "gemini-recordings"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # 04:00 in Los Angeles (PST, UTC-8)
HTTP_DATE = "Wed, 25 Nov 2026 12:00:45 GMT"  # NOW + 45 s
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def error(code: int, status: str, *details: dict[str, Any]) -> dict[str, Any]:
    return {"error": {"code": code, "status": status, "message": "m", "details": list(details)}}


def quota(quota_id: str, *models: str) -> dict[str, Any]:
    """A QuotaFailure: one violation of `quota_id`, or one per model named."""
    violations = [
        {"quotaId": quota_id, "quotaDimensions": {"location": "global", "model": model}}
        for model in models
    ]
    return {"@type": QUOTA_FAILURE, "violations": violations or [{"quotaId": quota_id}]}


def retry(delay: str) -> dict[str, Any]:
    return {"@type": RETRY_INFO, "retryDelay": delay}


def reason(name: str) -> dict[str, Any]:
    return {"@type": ERROR_INFO, "reason": name, "domain": "googleapis.com"}


def leaked() -> dict[str, Any]:
    """Gemini's 403 for a key reported as leaked: no details at all."""
    message = "Your API key was reported as leaked. Please use another API key."
    return {"error": {"code": 403, "message": message, "status": "PERMISSION_DENIED"}}


def exhausted(*details: dict[str, Any]) -> dict[str, Any]:
    return error(429, "RESOURCE_EXHAUSTED", *details)


PER_MINUTE = quota("GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
PER_DAY = quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier")
INVALID = Verdict("invalid_key", None)
FORBIDDEN = Verdict("forbidden", None)


@pytest.mark.parametrize(
    ("status", "body", "retry_after", "expected"),
    [
        (429, exhausted(PER_MINUTE, retry("34.4s")), None, Verdict("quota", 34.4)),
        (429, exhausted(retry("26s")), "99", Verdict("quota", 26.0)),
        (429, exhausted(), "17", Verdict("quota", 17.0)),
        (429, exhausted(), HTTP_DATE, Verdict("quota", 45.0)),
        (429, exhausted(), None, Verdict("quota", 60.0)),
        (429, exhausted(), "soon", Verdict("quota", 60.0)),
        (429, exhausted(retry("0s")), None, Verdict("quota", MIN_COOLDOWN)),
        (429, exhausted(retry("999999s")), None, Verdict("quota", MAX_COOLDOWN)),
        (429, exhausted(retry("forever")), None, Verdict("quota", 60.0)),
        (429, exhausted(PER_DAY, retry("5s")), None, Verdict("daily_quota", 20 * 3600.0)),
        (400, error(400, "INVALID_ARGUMENT", reason("API_KEY_INVALID")), None, INVALID),
        (401, error(401, "UNAUTHENTICATED"), None, INVALID),
        (403, error(403, "PERMISSION_DENIED", reason("CONSUMER_SUSPENDED")), None, FORBIDDEN),
        (403, error(403, "PERMISSION_DENIED", reason("SERVICE_DISABLED")), None, FORBIDDEN),
        (403, error(403, "PERMISSION_DENIED"), None, Verdict("client_error")),
        (403, leaked(), None, FORBIDDEN),
        (500, error(500, "INTERNAL"), None, UPSTREAM_FAULT),
        (503, error(503, "UNAVAILABLE"), "120", UPSTREAM_FAULT),
        (504, error(504, "DEADLINE_EXCEEDED"), None, UPSTREAM_FAULT),
        (400, error(400, "INVALID_ARGUMENT"), None, Verdict("client_error")),
        (404, error(404, "NOT_FOUND"), None, Verdict("client_error")),
        (413, {"error": {"code": 413}}, None, Verdict("client_error")),
    ],
    ids=[
        "quota-retryinfo", "retryinfo-beats-header", "retry-after-seconds", "retry-after-date",
        "quota-default-60s", "garbled-header", "zero-delay-floored", "huge-delay-capped",
        "garbled-retryinfo", "per-day-until-pacific-midnight", "invalid-key", "unauthenticated",
        "suspended", "api-disabled", "403-about-the-request", "leaked-key", "internal",
        "unavailable-short-only", "deadline", "bad-request", "unknown-model", "too-large",
    ],
)  # fmt: skip
def test_each_gemini_error_gets_its_verdict(
    status: int, body: dict[str, Any], retry_after: str | None, expected: Verdict
) -> None:
    """Quota cools for Gemini's hint, refused keys are disabled, 5xx pause, other 4xx are ours."""
    assert classify(status, body, retry_after, now=NOW) == expected


@pytest.mark.parametrize(
    ("now", "seconds"),
    [
        (datetime(2026, 11, 25, 7, 59, 30, tzinfo=UTC), 30.0),  # 23:59:30 PST
        (datetime(2026, 7, 1, 6, 0, tzinfo=UTC), 1 * 3600.0),  # 23:00 PDT
        (datetime(2026, 3, 8, 9, 0, tzinfo=UTC), 22 * 3600.0),  # 01:00 PST; 02:00 is skipped
    ],
    ids=["winter", "summer", "dst-change"],
)  # fmt: skip
def test_a_daily_quota_cools_until_the_next_pacific_midnight(now: datetime, seconds: float) -> None:
    """Gemini resets daily quotas at midnight Pacific time, daylight saving included."""
    verdict = classify(429, exhausted(PER_DAY), None, now=now)
    assert verdict == Verdict("daily_quota", seconds)


PRO = "gemini-2.5-pro"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (exhausted(PER_MINUTE, retry("26s")), Verdict("quota", 26.0)),
        (exhausted(quota("PerMinute", PRO), retry("26s")), Verdict("quota", 26.0, PRO)),
        (
            exhausted(quota("InputTokensPerModelPerMinute", PRO), quota("RequestsPerDay", PRO)),
            Verdict("daily_quota", 20 * 3600.0, PRO),
        ),
        (
            {"error": {"status": "RESOURCE_EXHAUSTED", "details": [{
                "@type": QUOTA_FAILURE, "violations": [
                    {"quotaId": "RequestsPerMinute", "quotaDimensions": {"location": "global"}},
                    {"quotaId": "TokensPerMinute", "quotaDimensions": {"model": PRO}},
                ]}]}},
            Verdict("quota", 60.0, PRO),
        ),
        (exhausted(quota("PerMinute", "")), Verdict("quota", 60.0)),
    ],
    ids=["unnamed", "named", "several-violations-one-per-day", "named-by-a-later-violation",
         "empty-name"],
)  # fmt: skip
def test_a_quota_verdict_names_the_model_gemini_names(
    body: dict[str, Any], expected: Verdict
) -> None:
    """Gemini's quotas are per model: quotaDimensions.model scopes the cooldown, else nothing."""
    assert classify(429, body, now=NOW) == expected


@pytest.mark.parametrize("kind", ["quota", "client_error"])
def test_only_client_errors_are_not_worth_another_key(kind: str) -> None:
    """retryable is false for the client's own mistakes only."""
    assert Verdict(kind).retryable is (kind != "client_error")


def test_an_unknown_kind_is_rejected_at_construction() -> None:
    """A typo in a kind fails loudly instead of becoming a metric label."""
    with pytest.raises(ValueError, match="unknown verdict kind"):
        Verdict("quota-ish")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("vercel-ai_google-429-retry-info.json", "quota"),
        ("issue_roo-code-3883_429_RESOURCE_EXHAUSTED.json", "quota"),
        (
            "issue_continue-8516_400_API_KEY_INVALID_streamGenerateContent_jsonarray.json",
            "invalid_key",
        ),
        # A call without any key ("...use API Key or other form of API consumer identity").
        ("issue_openai-gemini-92_403_PERMISSION_DENIED_no_key.json", "forbidden"),
        ("issue_lobehub-9728_503_UNAVAILABLE_overloaded.json", "upstream_error"),
        ("issue_openai-gemini-15_500_INTERNAL.json", "upstream_error"),
        ("issue_ai.nvim-13_400_INVALID_ARGUMENT_BadRequest.json", "client_error"),
        ("vercel-ai_issue-8943_gemini-2.5-flash_400_INVALID_ARGUMENT.json", "client_error"),
    ],
)  # fmt: skip
def test_recorded_gemini_errors_are_classified(name: str, kind: str) -> None:
    """Real error bodies from ../shared/gemini-recordings get the verdict their status implies."""
    path = RECORDINGS / name
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/gemini-recordings is not checked out)")
    raw = path.read_bytes()
    body = parse_gemini_error(0, raw)
    status = body["error"]["code"]
    assert classify(status, body, now=NOW).kind == kind
    if name.startswith("vercel-ai_google-429"):
        assert classify(status, body, now=NOW).cooldown == 34.4
    if name.startswith("issue_roo-code-3883"):
        assert classify(status, body, now=NOW).model == "gemini-2.5-flash"
    assert json.loads(raw)  # the file itself is JSON, as recorded


# Gemini's OpenAI-compatible path wraps its errors in a one-element list, without Retry-After.
@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, error(429, "RESOURCE_EXHAUSTED", retry("17s")), Verdict("quota", 17.0)),
        (429, error(429, "RESOURCE_EXHAUSTED"), Verdict("quota", 60.0)),
        (
            400,
            error(400, "INVALID_ARGUMENT", reason("API_KEY_INVALID")),
            Verdict("invalid_key", None),
        ),
        (503, error(503, "UNAVAILABLE"), UPSTREAM_FAULT),
        (400, error(400, "INVALID_ARGUMENT"), Verdict("client_error")),
    ],
    ids=["quota-with-retry-info", "quota-without-hint", "invalid-key", "unavailable", "client"],
)
def test_a_list_wrapped_error_is_classified_like_the_native_one(
    status: int, body: dict[str, Any], expected: Verdict
) -> None:
    wrapped = parse_gemini_error(status, json.dumps([body]).encode())
    assert wrapped == body
    assert classify(status, wrapped, None, NOW) == expected


@pytest.mark.parametrize(
    "raw", [b"[]", b'[{"error": {}}, {"error": {}}]', b"[1]"], ids=["empty", "two", "not-error"]
)
def test_a_list_that_is_not_one_gemini_error_reads_as_a_bodyless_error(raw: bytes) -> None:
    parsed = parse_gemini_error(502, raw)
    assert parsed["error"]["code"] == 502
    assert "without a JSON error body" in parsed["error"]["message"]
