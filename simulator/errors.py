"""Gemini's error bodies: the plain one for each HTTP status, and the named faults in full.

Usage::

    body = fault_error("quota", key="AIza...", model="gemini-2.5-flash", retry_delay=34)
"""

from http import HTTPStatus
from typing import Any

# HTTP's highest status code: an error body naming a code above it names none.
MAX_STATUS = 599

ERROR_STATUSES: dict[int, tuple[str, str]] = {
    HTTPStatus.BAD_REQUEST: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    HTTPStatus.UNAUTHORIZED: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    HTTPStatus.FORBIDDEN: ("PERMISSION_DENIED", "The caller does not have permission."),
    HTTPStatus.NOT_FOUND: ("NOT_FOUND", "Requested entity was not found."),
    HTTPStatus.TOO_MANY_REQUESTS: (
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
    ),
    HTTPStatus.INTERNAL_SERVER_ERROR: ("INTERNAL", "An internal error has occurred."),
    HTTPStatus.SERVICE_UNAVAILABLE: (
        "UNAVAILABLE",
        "The model is overloaded. Please try again later.",
    ),
    HTTPStatus.GATEWAY_TIMEOUT: ("DEADLINE_EXCEEDED", "The request timed out."),
}
UNKNOWN_ERROR_STATUS = ("UNKNOWN", "Unknown error.")

# Named upstream failures (Behaviour.fault) and their HTTP status; fault_error builds the bodies.
FAULTS: dict[str, int] = {
    "quota": HTTPStatus.TOO_MANY_REQUESTS,
    "daily_quota": HTTPStatus.TOO_MANY_REQUESTS,
    "invalid_key": HTTPStatus.BAD_REQUEST,
    "forbidden": HTTPStatus.FORBIDDEN,
    "unavailable": HTTPStatus.SERVICE_UNAVAILABLE,
    "internal": HTTPStatus.INTERNAL_SERVER_ERROR,
}
# The free-tier limit each quota fault reports: (quotaId, quotaValue), as Gemini words them.
QUOTA_LIMITS: dict[str, tuple[str, str]] = {
    "quota": ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "10"),
    "daily_quota": ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "250"),
}
RPC_TYPE_PREFIX = "type.googleapis.com/google.rpc."
GEMINI_SERVICE = "generativelanguage.googleapis.com"
ERROR_DOMAIN = "googleapis.com"
RATE_LIMITS_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"
QUOTA_HELP = "Learn more about Gemini API quotas"
QUOTA_METRIC = f"{GEMINI_SERVICE}/generate_content_free_tier_requests"
QUOTA_LOCATION = "global"
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. "
    f"For more information on this error, head to: {RATE_LIMITS_URL}."
)
INVALID_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
INVALID_KEY_REASON = "API_KEY_INVALID"
MESSAGE_LOCALE = "en-US"
# Gemini really quotes the caller's key here, which is why a proxy must redact upstream messages.
SUSPENDED_MESSAGE = "Permission denied: Consumer 'api_key:{key}' has been suspended."
SUSPENDED_REASON = "CONSUMER_SUSPENDED"
SUSPENDED_CONSUMER = "projects/123456789"
# protobuf Durations (retryDelay) carry at most nanoseconds.
DURATION_DIGITS = 9


def gemini_error(code: int, message: str | None = None) -> dict[str, Any]:
    """Return a Gemini-shaped error body for an HTTP status."""
    status, default_message = ERROR_STATUSES.get(code, UNKNOWN_ERROR_STATUS)
    return {"error": {"code": int(code), "message": message or default_message, "status": status}}


def fault_error(
    name: str, *, key: str, model: str, retry_delay: float | None = None
) -> dict[str, Any]:
    """Return the body Gemini sends for a FAULTS name, quoting the key and model where it does."""
    code = FAULTS[name]
    details: list[dict[str, Any]]
    if name in QUOTA_LIMITS:
        message = QUOTA_MESSAGE
        details = _quota_details(model, *QUOTA_LIMITS[name], retry_delay)
    elif name == "invalid_key":
        message = INVALID_KEY_MESSAGE
        localized = {"locale": MESSAGE_LOCALE, "message": INVALID_KEY_MESSAGE}
        details = [
            _error_info(INVALID_KEY_REASON, {"service": GEMINI_SERVICE}),
            {"@type": RPC_TYPE_PREFIX + "LocalizedMessage", **localized},
        ]
    elif name == "forbidden":
        message = SUSPENDED_MESSAGE.format(key=key)
        metadata = {"consumer": SUSPENDED_CONSUMER, "service": GEMINI_SERVICE}
        details = [_error_info(SUSPENDED_REASON, metadata)]
    else:
        return gemini_error(code)
    error = gemini_error(code, message)
    error["error"]["details"] = details
    return error


def format_duration(seconds: float) -> str:
    """Write seconds as Gemini writes a protobuf Duration: "34s", "0.5s", "34.4s"."""
    return f"{seconds:.{DURATION_DIGITS}f}".rstrip("0").rstrip(".") + "s"


def error_code(error: dict[str, Any]) -> int:
    """Return the HTTP error status an error body names, or 500 when it names none."""
    fields = error.get("error")
    code = fields.get("code") if isinstance(fields, dict) else None
    if isinstance(code, int) and HTTPStatus.BAD_REQUEST <= code <= MAX_STATUS:
        return code
    return HTTPStatus.INTERNAL_SERVER_ERROR


def _quota_details(
    model: str, quota_id: str, quota_value: str, retry_delay: float | None
) -> list[dict[str, Any]]:
    violation = {
        "quotaMetric": QUOTA_METRIC,
        "quotaId": quota_id,
        "quotaDimensions": {"location": QUOTA_LOCATION, "model": model},
        "quotaValue": quota_value,
    }
    details: list[dict[str, Any]] = [
        {"@type": RPC_TYPE_PREFIX + "QuotaFailure", "violations": [violation]},
        {
            "@type": RPC_TYPE_PREFIX + "Help",
            "links": [{"description": QUOTA_HELP, "url": RATE_LIMITS_URL}],
        },
    ]
    if retry_delay is not None:
        retry = {"@type": RPC_TYPE_PREFIX + "RetryInfo", "retryDelay": format_duration(retry_delay)}
        details.append(retry)
    return details


def _error_info(reason: str, metadata: dict[str, str]) -> dict[str, Any]:
    return {
        "@type": RPC_TYPE_PREFIX + "ErrorInfo",
        "reason": reason,
        "domain": ERROR_DOMAIN,
        "metadata": metadata,
    }
