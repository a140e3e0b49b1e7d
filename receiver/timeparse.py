"""Times and durations as users type them: ISO 8601, epoch seconds, or `30m` / `2h` / `7d` (ago)."""

from __future__ import annotations

import re
import time

from receiver.model import parse_iso

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """`90s`, `30m`, `2h`, `30d`, `1w` → seconds. Raises ValueError with a readable message."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30m, 2h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_time(text: str, *, now: float | None = None) -> float:
    """An instant: ISO 8601 (`2026-11-21T10:00:00Z`, `2026-11-21`), epoch seconds, or a duration ago."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if _DURATION.match(text):
        return (time.time() if now is None else now) - parse_duration(text)
    try:
        return parse_iso(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time (use ISO 8601 like 2026-11-21T10:00:00Z, or 2h / 7d for 'ago')"
        ) from None
