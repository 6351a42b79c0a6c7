"""How the simulator answers: the Behaviour, the configuration per API key, and its checks.

Usage::

    config = parse_config({"keys": {"k1": {"fault": "quota"}}}, Behaviour(events=3))
    behaviour = config.for_key("k1")
"""

# No `from __future__ import annotations` here: checked_fields reads Behaviour's field types as
# the type objects they are, not as strings.
import dataclasses
import json
import types
import typing
from typing import Any

from simulator.errors import FAULTS, MAX_STATUS

# 12 events of 20 words 0.25 s apart: a demo crosses the proxy's 50-token chunks several times.
DEFAULT_EVENTS = 12
DEFAULT_DELAY = 0.25
DEFAULT_WORDS_PER_EVENT = 20
DEFAULT_FINISH_REASON = "STOP"
# A configured status is a whole answer: an informational (1xx) one would be none.
MIN_STATUS = 200


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """How the simulator answers a generation request; every field has a working default."""

    events: int = DEFAULT_EVENTS
    delay: float = DEFAULT_DELAY
    first_delay: float = 0.0
    words_per_event: int = DEFAULT_WORDS_PER_EVENT
    thought_events: int = 0
    finish_reason: str | None = DEFAULT_FINISH_REASON
    block_reason: str | None = None
    parts_extra: list[dict[str, Any]] | None = None
    status: int | None = None
    error_body: dict[str, Any] | None = None
    retry_after: int | None = None
    cut_after: int | None = None
    hang_before_headers: float = 0.0
    error_event_after: int | None = None
    # With error_event_after: end with the error as bare indented JSON instead of a data: event.
    error_bare: bool = False
    text: str | None = None
    stamp: bool = False
    # A FAULTS name: answer with Gemini's own error for it instead of streaming.
    fault: str | None = None
    # With fault: only calls for this model meet it, as a quota is per model; None: every call.
    fault_model: str | None = None
    # The quota faults' RetryInfo.retryDelay in seconds; None leaves RetryInfo out, as Gemini may.
    retry_delay: float | None = None
    # After this many events (0: right after the headers), say nothing for stall_seconds.
    stall_after: int | None = None
    stall_seconds: float = 30.0
    # A stream body sent exactly as given (a recorded Gemini stream), instead of made-up events.
    raw_body: str | None = None


BEHAVIOUR_FIELDS = {field.name: field.type for field in dataclasses.fields(Behaviour)}


class ConfigError(ValueError):
    """A behaviour configuration that cannot be applied."""


@dataclasses.dataclass(frozen=True)
class SimulatorConfig:
    """The default behaviour plus complete behaviours for the keys that override it."""

    default: Behaviour
    keys: dict[str, Behaviour]

    def for_key(self, key: str) -> Behaviour:
        """Return the behaviour that applies to requests made with this API key."""
        return self.keys.get(key, self.default)

    def to_json(self) -> dict[str, Any]:
        """Return the configuration as the effective behaviour of the default and each key."""
        return {
            "default": dataclasses.asdict(self.default),
            "keys": {key: dataclasses.asdict(value) for key, value in self.keys.items()},
        }


def parse_config(payload: Any, base: Behaviour) -> SimulatorConfig:
    """Validate a `PUT /_sim/behaviour` body; its fields override `base`. Raise ConfigError."""
    if not isinstance(payload, dict):
        raise ConfigError("the body must be a JSON object")
    unknown = sorted(set(payload) - {"default", "keys"})
    if unknown:
        raise ConfigError(f"unknown top-level field(s): {', '.join(unknown)}")
    default = dataclasses.replace(base, **checked_fields(payload.get("default", {}), "default"))
    keys = payload.get("keys", {})
    if not isinstance(keys, dict):
        raise ConfigError("keys must be an object of API key to behaviour fields")
    return SimulatorConfig(
        default=_checked_behaviour(default, "default"),
        keys={
            key: _checked_behaviour(
                dataclasses.replace(default, **checked_fields(fields, f"keys.{key}")), f"keys.{key}"
            )
            for key, fields in keys.items()
        },
    )


def checked_fields(fields: Any, where: str) -> dict[str, Any]:
    """Return behaviour fields after checking names, types and ranges; raise ConfigError."""
    if not isinstance(fields, dict):
        raise ConfigError(f"{where} must be an object of behaviour fields")
    unknown = sorted(set(fields) - set(BEHAVIOUR_FIELDS))
    if unknown:
        raise ConfigError(f"unknown behaviour field(s) in {where}: {', '.join(unknown)}")
    for name, value in fields.items():
        hint = BEHAVIOUR_FIELDS[name]
        if not _matches_type(value, hint):
            raise ConfigError(f"{where}.{name} must be {_type_name(hint)}, not {json.dumps(value)}")
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{where}.{name} must not be negative")
        if name == "status" and value is not None and not MIN_STATUS <= value <= MAX_STATUS:
            raise ConfigError(f"{where}.status must be between {MIN_STATUS} and {MAX_STATUS}")
        if name == "fault" and value is not None and value not in FAULTS:
            raise ConfigError(
                f"{where}.fault must be one of {', '.join(FAULTS)}, not {json.dumps(value)}"
            )
    return fields


def _checked_behaviour(behaviour: Behaviour, where: str) -> Behaviour:
    """Return a resolved behaviour whose fields do not contradict each other; raise ConfigError."""
    if behaviour.fault is not None and behaviour.status is not None:
        # Each picks the HTTP status; refusing beats silently preferring one of them.
        raise ConfigError(f"{where} sets both fault and status; set one of them to null")
    return behaviour


def _matches_type(value: Any, hint: Any) -> bool:
    """Tell whether a decoded JSON value fits a Behaviour field's annotation."""
    if isinstance(hint, types.UnionType):
        return any(_matches_type(value, arg) for arg in typing.get_args(hint))
    origin = typing.get_origin(hint) or hint
    if isinstance(value, bool) or origin is bool:
        # bool is an int subclass, but `true` is no event count and `1` no flag.
        return isinstance(value, bool) and origin is bool
    if origin is float:
        return isinstance(value, int | float)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches_type(each, item) for each in value)
    return isinstance(value, origin)


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint)
