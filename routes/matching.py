"""Subscription matching: which subscriptions receive an event.

Why a module of its own: the fan-out (one delivery per matching subscription, written in the same
transaction as the event), replay by filter, and the admin API's validation all need the same
rules, and they must be cheap (run once per subscription per event) and pure.

A subscription selects events with two things:

- `event_types`: exact types (`"transcript.completed"`), `"*"`, or a family wildcard
  (`"transcript.*"`); an empty list means every type.
- `filter`: `{"provider": ["assemblyai", …], "metadata": {"key": "value" | ["v1", "v2"]}}`; both
  parts are optional and all given parts must match. `provider` matches when the event's
  provider is listed; each `metadata` key matches when the event's metadata has that key with
  that value (or one of the listed values).

Filter values are strings, because they come from the CLI (`--metadata K=V`) as often as from
JSON. A non-string scalar in the event's metadata matches the string of its JSON form, so
`{"priority": 1}` matches the filter value `"1"` and `{"vip": true}` matches `"true"`; objects
and arrays in event metadata never match.

Validation is strict (unknown keys, unknown event types, wrong shapes are rejected with a message
saying what is wrong) so that a typo does not silently create a subscription matching nothing.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

#: The event types Callboard emits.
EVENT_TYPES = ("transcript.completed", "transcript.failed")
WILDCARD = "*"
FILTER_KEYS = ("provider", "metadata")


def _family_patterns() -> frozenset[str]:
    """`"transcript.*"` and any other `<prefix>.*` some known event type falls under."""
    patterns: set[str] = set()
    for event_type in EVENT_TYPES:
        parts = event_type.split(".")
        for end in range(1, len(parts)):
            patterns.add(".".join(parts[:end]) + ".*")
    return frozenset(patterns)


FAMILY_PATTERNS = _family_patterns()


def validate_event_types(value: object) -> list[str]:
    """Check a subscription's `event_types` and return it without duplicates (order kept).

    Accepts None or an empty list (every type), and lists of known types, `"*"` and family
    wildcards such as `"transcript.*"`.

    Raises:
        ValueError: not a list, a non-string entry, or an unknown type or pattern.
    """
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(
            f"event_types must be a list of event types, got {type(value).__name__}; "
            f"known types: {', '.join(EVENT_TYPES)}"
        )
    result: list[str] = []
    for entry in value:
        if not isinstance(entry, str):
            raise ValueError(f"event_types entries must be strings, got {type(entry).__name__}: {entry!r}")
        if entry != WILDCARD and entry not in EVENT_TYPES and entry not in FAMILY_PATTERNS:
            allowed = ", ".join((*EVENT_TYPES, WILDCARD, *sorted(FAMILY_PATTERNS)))
            raise ValueError(f"unknown event type {entry!r}; use one of: {allowed}")
        if entry not in result:
            result.append(entry)
    return result


def _check_strings(where: str, values: object, *, choices: Collection[str] | None = None) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ValueError(f"{where} must be a list of strings, got {type(values).__name__}")
    if not values:
        raise ValueError(f"{where} is an empty list, which would match nothing; leave it out to match any")
    checked: list[str] = []
    for item in values:
        if not isinstance(item, str) or not item:
            raise ValueError(f"{where} values must be non-empty strings, got {item!r}")
        if choices is not None and item not in choices:
            raise ValueError(f"{where}: unknown value {item!r}; use one of: {', '.join(sorted(choices))}")
        if item not in checked:
            checked.append(item)
    return checked


def validate_filter(value: object, *, providers: Collection[str] | None = None) -> dict[str, Any]:
    """Check a subscription's `filter` and return a clean copy.

    Args:
        value: None or `{}` (no filter), or a mapping with `provider` (list of provider ids)
            and/or `metadata` (mapping of key to a string or a non-empty list of strings).
        providers: the known provider ids; when given, unknown ones are rejected.

    Returns:
        A new dict with only the parts given, lists de-duplicated.

    Raises:
        ValueError: an unknown key or a value of the wrong shape; the message names it.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"filter must be an object, got {type(value).__name__}")
    unknown = [key for key in value if key not in FILTER_KEYS]
    if unknown:
        raise ValueError(
            f"filter has unknown key(s) {', '.join(repr(k) for k in unknown)}; "
            f"allowed: {', '.join(FILTER_KEYS)}"
        )
    result: dict[str, Any] = {}
    if "provider" in value:
        result["provider"] = _check_strings("filter.provider", value["provider"], choices=providers)
    if "metadata" in value:
        metadata = value["metadata"]
        if not isinstance(metadata, Mapping):
            raise ValueError(f"filter.metadata must be an object, got {type(metadata).__name__}")
        clean: dict[str, str | list[str]] = {}
        for key, wanted in metadata.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"filter.metadata keys must be non-empty strings, got {key!r}")
            if isinstance(wanted, str):
                clean[key] = wanted
            else:
                clean[key] = _check_strings(f"filter.metadata.{key}", wanted)
        result["metadata"] = clean
    return result


def event_type_matches(event_type: str, patterns: Sequence[str]) -> bool:
    """True when `event_type` is selected by `patterns` (empty = every type)."""
    if not patterns:
        return True
    for pattern in patterns:
        if pattern == WILDCARD or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def _as_text(value: object) -> str | None:
    """How an event metadata value compares with a filter string (None: it never matches)."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return None


def metadata_matches(metadata: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True when every key of `wanted` is in `metadata` with (one of) the wanted value(s)."""
    for key, values in wanted.items():
        if key not in metadata:
            return False
        actual = _as_text(metadata[key])
        if actual is None:
            return False
        if isinstance(values, str):
            if actual != values:
                return False
        elif actual not in values:
            return False
    return True


def matches(
    event_type: str,
    provider: str,
    metadata: Mapping[str, Any] | None,
    *,
    event_types: Sequence[str],
    filter: Mapping[str, Any] | None,
) -> bool:
    """Whether a subscription with `event_types` and `filter` receives this event.

    Args:
        event_type: e.g. `"transcript.completed"`.
        provider: the provider id of the transcript, e.g. `"assemblyai"`.
        metadata: the job's metadata (None is treated as `{}`).
        event_types: the subscription's types and patterns (validated; empty = every type).
        filter: the subscription's filter (validated; None or `{}` = no filter).
    """
    if not event_type_matches(event_type, event_types):
        return False
    if not filter:
        return True
    providers = filter.get("provider")
    if providers and provider not in providers:
        return False
    wanted = filter.get("metadata")
    if wanted and not metadata_matches(metadata or {}, wanted):
        return False
    return True
