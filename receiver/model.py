"""The normalized transcript: one shape for every provider.

Adapters build a `Transcript` from a provider's own payload; everything after them (storage,
events, deliveries) only ever sees this shape. Fields a provider does not give are `None`, never
invented. Times are seconds (float); timestamps on the wire are ISO 8601 UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import msgspec


class Word(msgspec.Struct, omit_defaults=False):
    word: str
    start: float | None = None
    end: float | None = None
    confidence: float | None = None
    speaker: str | None = None


class Utterance(msgspec.Struct, omit_defaults=False):
    speaker: str | None
    start: float | None
    end: float | None
    text: str
    confidence: float | None = None


class TranscriptError(msgspec.Struct):
    code: str
    message: str


class Transcript(msgspec.Struct, omit_defaults=False):
    """A provider's result, normalized. `id`, `job_id` and `created` are filled in by the processor."""

    status: str  # "completed" | "failed"
    provider: str
    provider_job_id: str
    id: str | None = None
    object: str = "transcript"
    job_id: str | None = None
    created: str | None = None
    completed_at: str | None = None
    language: str | None = None
    duration: float | None = None
    confidence: float | None = None
    text: str = ""
    utterances: list[Utterance] = msgspec.field(default_factory=list)
    words: list[Word] = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    error: TranscriptError | None = None


def completed(provider: str, provider_job_id: str, **fields: Any) -> Transcript:
    return Transcript(status="completed", provider=provider, provider_job_id=provider_job_id, **fields)


def failed(provider: str, provider_job_id: str, code: str, message: str, **fields: Any) -> Transcript:
    return Transcript(
        status="failed",
        provider=provider,
        provider_job_id=provider_job_id,
        error=TranscriptError(code=code, message=message),
        **fields,
    )


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the known values, or None when there are none (used for derived confidences)."""
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 4) if known else None


def speaker_label(value: object) -> str | None:
    """Providers give speakers as ints, strings or objects; the model holds a string or None."""
    if value is None or value == "":
        return None
    return str(value)


def seconds(value: object, *, scale: float = 1.0) -> float | None:
    """A time as float seconds; `scale=1000` for providers that count milliseconds."""
    kind = type(value)
    if kind is float or kind is int:  # the common case first (bool, a subclass of int, is not)
        return round(value / scale, 3)  # type: ignore[operator]
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return round(float(value) / scale, 3)
    try:
        return round(float(str(value)) / scale, 3)
    except ValueError:
        return None


def utterances_from_words(words: list[Word]) -> list[Utterance]:
    """Group consecutive words by speaker, for providers that give no utterance list."""
    groups: list[list[Word]] = []
    for w in words:
        if groups and groups[-1][-1].speaker == w.speaker:
            groups[-1].append(w)
        else:
            groups.append([w])
    return [
        Utterance(
            speaker=g[0].speaker,
            start=g[0].start,
            end=g[-1].end,
            text=" ".join(w.word for w in g),
            confidence=mean(w.confidence for w in g),
        )
        for g in groups
    ]


def iso(ts: float | None) -> str | None:
    """Epoch seconds → ISO 8601 UTC with a `Z`, second precision (wire format)."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> float:
    """ISO 8601 (with `Z` or offset, or a bare date) → epoch seconds. Raises ValueError."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def iso_or_none(value: object) -> str | None:
    """A provider's timestamp (ISO text or epoch number) normalized to our wire format."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return iso(float(value))
    try:
        return iso(parse_iso(str(value)))
    except ValueError:
        return None
