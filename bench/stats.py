"""Percentiles (nearest rank) and rates, the same way for every scenario."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (p in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(values: Sequence[float], digits: int = 2) -> dict[str, float | None]:
    """count, p50, p90, p99, p99.9, max and mean of values (milliseconds, by convention); None when empty."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "p999": None, "max": None, "mean": None}
    return {
        "count": len(ordered),
        "p50": round(percentile(ordered, 50), digits),
        "p90": round(percentile(ordered, 90), digits),
        "p99": round(percentile(ordered, 99), digits),
        "p999": round(percentile(ordered, 99.9), digits),
        "max": round(ordered[-1], digits),
        "mean": round(sum(ordered) / len(ordered), digits),
    }


def span_rate(times: Sequence[float]) -> float | None:
    """Arrivals per second between the first and the last of `times` ((n - 1) intervals)."""
    if len(times) < 2:
        return None
    first, last = min(times), max(times)
    return (len(times) - 1) / (last - first) if last > first else None


def median(values: Sequence[float]) -> float | None:
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def median_index(values: Sequence[float | None]) -> int | None:
    """The index of the median of `values` (the lower middle of an even count; Nones left out):
    the round whose figures stand for a repeated measurement. None when every value is None."""
    ranked = sorted((v, i) for i, v in enumerate(values) if v is not None)
    if not ranked:
        return None
    return ranked[(len(ranked) - 1) // 2][1]


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} ms"
