"""What a failed Gemini call says about its key: cool it down, disable it, or blame the request.

Usage::

    verdict = classify(429, gemini_error_body, retry_after_header="30")
    verdict.kind      # "quota"
    verdict.cooldown  # 30.0 seconds (RetryInfo first, then Retry-After, then 60 s)
    verdict.model     # "gemini-2.5-pro": the model the quota is for, when Gemini names it

Pure logic from Gemini's status and error body (`error.status`, `ErrorInfo.reason`,
`QuotaFailure.violations[].quotaId` and `.quotaDimensions.model`, `RetryInfo.retryDelay`); no Flask,
no sockets.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

Kind = Literal["quota", "daily_quota", "invalid_key", "forbidden", "upstream_error", "client_error"]
KINDS: tuple[Kind, ...] = get_args(Kind)
# The kinds that take a key out of rotation for KEY_DISABLE_SECONDS rather than a timed cooldown.
DISABLING: frozenset[Kind] = frozenset({"invalid_key", "forbidden"})

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
INVALID_KEY_REASON = "API_KEY_INVALID"
# A 403 is about the key or its project when its ErrorInfo.reason says so, or, for the bodies
# Gemini sends without details ("Your API key was reported as leaked", "Your project has been
# denied access"), when its message does. Gemini also answers 403 PERMISSION_DENIED about the
# request itself (a file or cached content of another project): that one is the client's.
KEY_REFUSED_REASONS = frozenset(
    {
        "CONSUMER_SUSPENDED",
        "SERVICE_DISABLED",
        "API_KEY_SERVICE_BLOCKED",
        "API_KEY_HTTP_REFERRER_BLOCKED",
        "API_KEY_IP_ADDRESS_BLOCKED",
        "API_KEY_ANDROID_APP_BLOCKED",
        "API_KEY_IOS_APP_BLOCKED",
        "BILLING_DISABLED",
    }
)
PER_DAY = "PerDay"

# A 429 without RetryInfo or Retry-After: Gemini's per-minute windows reset within a minute.
DEFAULT_QUOTA_COOLDOWN = 60.0
# Gemini's own failures (5xx, cuts, timeouts) are not the key's fault: a brief pause only, so a
# flapping backend is not hammered, without losing the key for long.
UPSTREAM_ERROR_COOLDOWN = 2.0
# Bounds on a hint from Gemini: a zero or garbled hint must not spin, nor a huge one lose the key.
MIN_COOLDOWN = 1.0
MAX_COOLDOWN = 24 * 3600.0
# Gemini resets daily quotas at midnight Pacific time.
PACIFIC = ZoneInfo("America/Los_Angeles")
DURATION = re.compile(r"(\d+(?:\.\d+)?)s")
KEY_REFUSED_MESSAGE = re.compile(r"api[ _]?key|consumer|project|leaked", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    """What to do about the key after one failed attempt."""

    kind: Kind
    # Seconds to keep the key out of rotation; None means the pool's KEY_DISABLE_SECONDS.
    cooldown: float | None = 0.0
    # The model a quota is exhausted for, as Gemini named it; None: the request's model.
    model: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown verdict kind {self.kind!r}; expected one of {KINDS}")

    @property
    def retryable(self) -> bool:
        """Whether another key may succeed where this one failed."""
        return self.kind != "client_error"


# Cuts, timeouts, malformed or incomplete streams: Gemini's side, worth another key.
UPSTREAM_FAULT = Verdict("upstream_error", UPSTREAM_ERROR_COOLDOWN)


def classify(
    status: int,
    body: dict[str, Any],
    retry_after: str | None = None,
    now: datetime | None = None,
) -> Verdict:
    """Classify Gemini's error answer (HTTP status and `{"error": ...}` body) for key health."""
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    if status == 429 or error.get("status") == "RESOURCE_EXHAUSTED":
        violations = _violations(details)
        model = _quota_model(violations)
        if any(PER_DAY in str(violation.get("quotaId", "")) for violation in violations):
            when = _until_pacific_midnight(now or datetime.now(UTC))
            return Verdict("daily_quota", when, model)
        hint = _retry_delay(details)
        if hint is None:
            hint = _retry_after_seconds(retry_after, now or datetime.now(UTC))
        return Verdict("quota", DEFAULT_QUOTA_COOLDOWN if hint is None else _bounded(hint), model)
    reasons = _reasons(details)
    if INVALID_KEY_REASON in reasons or status == 401:
        return Verdict("invalid_key", None)
    if status == 403 and (
        reasons & KEY_REFUSED_REASONS or KEY_REFUSED_MESSAGE.search(str(error.get("message", "")))
    ):
        return Verdict("forbidden", None)
    if status >= 500:
        return UPSTREAM_FAULT
    return Verdict("client_error")


def _reasons(details: list[dict[str, Any]]) -> set[str]:
    return {
        detail["reason"]
        for detail in details
        if detail.get("@type") == ERROR_INFO and isinstance(detail.get("reason"), str)
    }


def _violations(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        violation
        for detail in details
        if detail.get("@type") == QUOTA_FAILURE and isinstance(detail.get("violations"), list)
        for violation in detail["violations"]
        if isinstance(violation, dict)
    ]


def _quota_model(violations: list[dict[str, Any]]) -> str | None:
    """The model the quota belongs to: Gemini's quotas are per project and per model.

    A body carries several violations (per minute and per day at once); they name one model, so
    the first named one is it.
    """
    for violation in violations:
        dimensions = violation.get("quotaDimensions")
        if isinstance(dimensions, dict) and isinstance(dimensions.get("model"), str):
            return dimensions["model"] or None
    return None


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    for detail in details:
        delay = detail.get("retryDelay")
        if detail.get("@type") == RETRY_INFO and isinstance(delay, str):
            match = DURATION.fullmatch(delay.strip())
            if match:
                return float(match[1])
    return None


def _retry_after_seconds(header: str | None, now: datetime) -> float | None:
    """Retry-After as delta-seconds or an HTTP date (RFC 9110)."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return (when - now).total_seconds()


def _bounded(seconds: float) -> float:
    if not math.isfinite(seconds):
        return MAX_COOLDOWN
    return min(max(seconds, MIN_COOLDOWN), MAX_COOLDOWN)


def _until_pacific_midnight(now: datetime) -> float:
    local = now.astimezone(PACIFIC)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), PACIFIC)
    # Compare in UTC: subtracting two aware datetimes in one zone ignores a DST change between.
    return _bounded((midnight.astimezone(UTC) - now.astimezone(UTC)).total_seconds())
