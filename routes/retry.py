"""Retry policy for outbound deliveries: when to try again, and what an answer means.

Why a module of its own: the delivery worker, replay and the CLI all need the same answers to
"was that attempt a success?" and "when is the next one due?", and those answers must be testable
without a network or a clock. Everything here is pure: randomness and wall time are injected
(`rng`, `clock`), so tests pin them and the worker uses the real ones.

The rules (design.md, "Delivery rules"), modelled on Svix's worker:

- `CALLBOARD_RETRY_SCHEDULE` lists the delay *before* each attempt, in seconds; entry 0 is the
  delay before the first attempt (normally 0), so a schedule of 8 entries allows 8 attempts.
  When it is used up, the delivery is `failed` (and stays replayable).
- Each scheduled delay gets ±20 % jitter, so a subscriber that came back up is not hit by every
  queued delivery in the same second.
- A `429` or `503` with `Retry-After` (delay-seconds or an HTTP-date) is honoured, but clamped
  between the (jittered) scheduled delay and twice the scheduled delay: a receiver may slow us
  down, not speed us up, and cannot push its retries out indefinitely.
- `2xx` is success; `3xx` is a failure (redirects are not followed, so a redirect never
  delivered anything); `410 Gone` disables the subscription; anything else, including no answer
  at all (timeout, refused connection), is a failure to retry.
"""

from __future__ import annotations

import datetime
import email.utils
import enum
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_RETRY_SCHEDULE = "0,5,300,1800,7200,18000,36000,36000"
DEFAULT_JITTER = 0.2

#: Statuses whose `Retry-After` header is honoured.
RETRY_AFTER_STATUSES = frozenset({429, 503})


class Outcome(enum.StrEnum):
    """What one delivery attempt means for the delivery and its subscription."""

    SUCCESS = "success"
    """A 2xx answer: the delivery is done."""
    FAILURE = "failure"
    """Anything else: retry per the schedule, then `failed`."""
    GONE = "gone"
    """410 Gone: the subscriber asked us to stop; disable the subscription."""


def classify(status: int | None, error: str | None) -> Outcome:
    """Classify one attempt by its HTTP status and transport error.

    Args:
        status: the response status code, or None when no response arrived.
        error: a transport error (timeout, connection refused, body read failed), or None.

    Returns:
        `Outcome.SUCCESS` for a 2xx without an error, `Outcome.GONE` for 410, otherwise
        `Outcome.FAILURE` (3xx included: redirects are not followed). A 2xx whose body could not
        be read within the timeout (`error` set) is a failure: success means "2xx within the
        timeout".
    """
    if error is not None or status is None:
        return Outcome.FAILURE
    if 200 <= status <= 299:
        return Outcome.SUCCESS
    if status == 410:
        return Outcome.GONE
    return Outcome.FAILURE


def parse_schedule(text: str) -> tuple[float, ...]:
    """Parse a comma-separated retry schedule in seconds, e.g. `"0,5,300,1800"`.

    Whitespace around entries is allowed; entries must be finite, non-negative numbers.

    Raises:
        ValueError: the text is empty, or an entry is missing or not a non-negative number;
            the message names the entry.
    """
    if not isinstance(text, str):
        raise ValueError(f"retry schedule must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError("retry schedule is empty: give comma-separated seconds, e.g. '0,5,300'")
    delays: list[float] = []
    for position, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        if not entry:
            raise ValueError(f"retry schedule {text!r}: entry {position} is empty")
        try:
            value = float(entry)
        except ValueError:
            raise ValueError(
                f"retry schedule {text!r}: entry {position} ({entry!r}) is not a number of seconds"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(
                f"retry schedule {text!r}: entry {position} ({entry!r}) must be a finite, "
                "non-negative number of seconds"
            )
        delays.append(value)
    return tuple(delays)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait according to a `Retry-After` header, or None when absent or unusable.

    Accepts delay-seconds (`"120"`; a decimal is tolerated) and an HTTP-date
    (`"Wed, 21 Oct 2015 07:28:00 GMT"`), which is measured from `now` (Unix seconds); a date in
    the past means 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" gives a naive datetime; RFC 9110 dates are GMT anyway
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class RetryPolicy:
    """When the next attempt of a delivery is due.

    Args:
        schedule: delay in seconds before each attempt (`parse_schedule`); entry 0 precedes the
            first attempt, so `len(schedule)` is the maximum number of attempts.
        jitter: relative jitter applied to each scheduled delay (0.2 = ±20 %).
        rng: source of randomness for the jitter (seed it in tests).
        clock: Unix time in seconds, used only to read HTTP-date `Retry-After` values.
    """

    schedule: tuple[float, ...]
    jitter: float = DEFAULT_JITTER
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)

    def __post_init__(self) -> None:
        schedule = tuple(float(delay) for delay in self.schedule)
        if not schedule:
            raise ValueError("retry schedule must have at least one entry")
        if any(not math.isfinite(delay) or delay < 0 for delay in schedule):
            raise ValueError(f"retry schedule {schedule!r} must hold finite, non-negative seconds")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter!r}")
        object.__setattr__(self, "schedule", schedule)

    @property
    def max_attempts(self) -> int:
        return len(self.schedule)

    def scheduled_delay(self, attempts_made: int) -> float | None:
        """The un-jittered delay before the next attempt, or None when the schedule is used up."""
        if attempts_made < 0:
            raise ValueError(f"attempts_made must be >= 0, got {attempts_made}")
        if attempts_made >= len(self.schedule):
            return None
        return self.schedule[attempts_made]

    def next_delay(self, attempts_made: int, *, status: int | None, retry_after: str | None) -> float | None:
        """Seconds until the next attempt, or None when no attempt is left (the delivery fails).

        Args:
            attempts_made: attempts already made for this delivery (0 before the first one).
            status: status code of the last attempt, None if it got no response (or none made).
            retry_after: the last response's `Retry-After` header, if any; honoured only for
                429 and 503.

        Returns:
            The scheduled delay with jitter; for 429/503 with a usable `Retry-After`, that value
            clamped between the jittered delay and twice the scheduled delay.
        """
        base = self.scheduled_delay(attempts_made)
        if base is None:
            return None
        delay = base * self.rng.uniform(1 - self.jitter, 1 + self.jitter) if self.jitter else base
        if status in RETRY_AFTER_STATUSES:
            wanted = parse_retry_after(retry_after, now=self.clock())
            if wanted is not None:
                delay = min(max(wanted, delay), 2 * base)
        return delay
