"""Retry policy: schedule parsing, jitter, Retry-After clamping, outcome classification."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from routes.retry import (
    DEFAULT_RETRY_SCHEDULE,
    Outcome,
    RetryPolicy,
    classify,
    parse_retry_after,
    parse_schedule,
)

NOW = 1_763_719_331.0  # fixed clock for HTTP-date Retry-After values
SCHEDULE = (0.0, 5.0, 300.0, 1800.0)


class Extreme(random.Random):
    """A random source whose `uniform` always gives the low or the high end."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def policy(*, high: bool | None = None, jitter: float = 0.2) -> RetryPolicy:
    rng = random.Random(1234) if high is None else Extreme(high)
    return RetryPolicy(SCHEDULE, jitter=jitter, rng=rng, clock=lambda: NOW)


def http_date(offset: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + offset, tz=UTC), usegmt=True)


# --- parse_schedule ---------------------------------------------------------------------------


def test_parse_schedule_reads_the_default_schedule() -> None:
    assert (0, 5, 300, 1800, 7200, 18000, 36000, 36000) == parse_schedule(DEFAULT_RETRY_SCHEDULE)


def test_parse_schedule_allows_spaces_and_decimals() -> None:
    assert (0.0, 0.5, 2.0) == parse_schedule(" 0, 0.5 ,2 ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("   ", "empty", id="blank"),
        pytest.param("0,5,", "entry 3 is empty", id="trailing-comma"),
        pytest.param("0,,5", "entry 2 is empty", id="double-comma"),
        pytest.param("0,5m,300", r"entry 2 \('5m'\) is not a number", id="unit-suffix"),
        pytest.param("0;5", r"entry 1 \('0;5'\) is not a number", id="wrong-separator"),
        pytest.param("0,-5", "non-negative", id="negative"),
        pytest.param("0,nan", "finite", id="nan"),
        pytest.param("0,inf", "finite", id="infinite"),
    ],
)
def test_parse_schedule_rejects_bad_input_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_schedule(text)


# --- classify ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        pytest.param(200, None, Outcome.SUCCESS, id="200"),
        pytest.param(204, None, Outcome.SUCCESS, id="204"),
        pytest.param(299, None, Outcome.SUCCESS, id="299"),
        pytest.param(301, None, Outcome.FAILURE, id="301-redirect-not-followed"),
        pytest.param(308, None, Outcome.FAILURE, id="308-redirect-not-followed"),
        pytest.param(400, None, Outcome.FAILURE, id="400"),
        pytest.param(404, None, Outcome.FAILURE, id="404"),
        pytest.param(410, None, Outcome.GONE, id="410-gone"),
        pytest.param(429, None, Outcome.FAILURE, id="429"),
        pytest.param(500, None, Outcome.FAILURE, id="500"),
        pytest.param(503, None, Outcome.FAILURE, id="503"),
        pytest.param(None, "timeout", Outcome.FAILURE, id="timeout"),
        pytest.param(None, None, Outcome.FAILURE, id="no-response"),
        pytest.param(200, "body read timed out", Outcome.FAILURE, id="2xx-with-error"),
        pytest.param(199, None, Outcome.FAILURE, id="1xx"),
    ],
)
def test_classify_maps_status_and_error_to_outcome(
    status: int | None, error: str | None, outcome: Outcome
) -> None:
    assert outcome == classify(status, error)


def test_outcome_values_are_plain_strings() -> None:
    assert ["success", "failure", "gone"] == [o.value for o in Outcome]


# --- next_delay: schedule and jitter ----------------------------------------------------------


@pytest.mark.parametrize("attempts_made", range(len(SCHEDULE)))
def test_next_delay_uses_the_schedule_entry_for_the_next_attempt(attempts_made: int) -> None:
    assert SCHEDULE[attempts_made] == policy(jitter=0).next_delay(attempts_made, status=500, retry_after=None)


def test_next_delay_is_none_when_the_schedule_is_exhausted() -> None:
    assert policy().next_delay(len(SCHEDULE), status=500, retry_after=None) is None
    assert policy().next_delay(len(SCHEDULE) + 3, status=None, retry_after=None) is None


def test_max_attempts_is_the_schedule_length() -> None:
    assert 4 == policy().max_attempts


@pytest.mark.parametrize(
    ("high", "factor"), [pytest.param(False, 0.8, id="low"), pytest.param(True, 1.2, id="high")]
)
def test_next_delay_jitter_reaches_plus_minus_twenty_percent(high: bool, factor: float) -> None:
    assert 300 * factor == pytest.approx(policy(high=high).next_delay(2, status=500, retry_after=None))


def test_next_delay_jitter_stays_within_twenty_percent_and_varies() -> None:
    p = policy()
    delays = [p.next_delay(2, status=500, retry_after=None) for _ in range(500)]
    assert all(d is not None and 240 <= d <= 360 for d in delays)
    assert len(set(delays)) > 400


def test_next_delay_with_a_seeded_rng_is_reproducible() -> None:
    a, b = policy(), policy()
    assert [a.next_delay(3, status=None, retry_after=None) for _ in range(5)] == [
        b.next_delay(3, status=None, retry_after=None) for _ in range(5)
    ]


def test_next_delay_before_the_first_attempt_is_the_first_entry() -> None:
    assert 0 == policy().next_delay(0, status=None, retry_after=None)


def test_next_delay_rejects_negative_attempt_counts() -> None:
    with pytest.raises(ValueError, match="attempts_made"):
        policy().next_delay(-1, status=None, retry_after=None)


# --- next_delay: Retry-After ------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_next_delay_honours_retry_after_up_to_twice_the_schedule(status: int) -> None:
    p = policy(high=True)  # jittered delay 360 for the 300 s entry
    assert 450 == p.next_delay(2, status=status, retry_after="450")
    assert 600 == p.next_delay(2, status=status, retry_after="601")
    assert 600 == p.next_delay(2, status=status, retry_after="86400")


def test_next_delay_never_retries_sooner_than_scheduled_despite_retry_after() -> None:
    assert 240 == pytest.approx(policy(high=False).next_delay(2, status=429, retry_after="1"))
    assert 360 == pytest.approx(policy(high=True).next_delay(2, status=503, retry_after="0"))


def test_next_delay_reads_retry_after_http_dates_against_the_injected_clock() -> None:
    p = policy(high=False)
    assert 500 == p.next_delay(2, status=503, retry_after=http_date(500))
    assert 600 == p.next_delay(2, status=503, retry_after=http_date(10_000))
    assert 240 == pytest.approx(p.next_delay(2, status=503, retry_after=http_date(-60)))


@pytest.mark.parametrize("status", [None, 200, 302, 410, 500, 502, 504])
def test_next_delay_ignores_retry_after_on_other_statuses(status: int | None) -> None:
    assert 240 == pytest.approx(policy(high=False).next_delay(2, status=status, retry_after="500"))


@pytest.mark.parametrize("header", ["soon", "", "-5", "nan", "Thu, 99 Foo 2026 25:61:00 GMT"])
def test_next_delay_ignores_an_unusable_retry_after(header: str) -> None:
    assert 240 == pytest.approx(policy(high=False).next_delay(2, status=429, retry_after=header))


def test_next_delay_with_retry_after_is_still_none_when_the_schedule_is_exhausted() -> None:
    assert policy().next_delay(4, status=429, retry_after="10") is None


# --- parse_retry_after ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        pytest.param("120", 120.0, id="delay-seconds"),
        pytest.param(" 7 ", 7.0, id="padded"),
        pytest.param("1.5", 1.5, id="decimal"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param(http_date(90), 90.0, id="http-date"),
        pytest.param(http_date(-90), 0.0, id="http-date-in-the-past"),
        pytest.param("Fri, 21 Nov 2025 10:04:41 -0000", 1763719481.0 - NOW, id="http-date-minus-zero-zone"),
        pytest.param(None, None, id="absent"),
        pytest.param("", None, id="empty"),
        pytest.param("-1", None, id="negative"),
        pytest.param("inf", None, id="infinite"),
        pytest.param("in a minute", None, id="garbage"),
    ],
)
def test_parse_retry_after_reads_seconds_and_http_dates(header: str | None, seconds: float | None) -> None:
    assert seconds == parse_retry_after(header, now=NOW)


# --- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"schedule": ()}, "at least one entry", id="empty-schedule"),
        pytest.param({"schedule": (0, -1)}, "non-negative", id="negative-delay"),
        pytest.param({"schedule": (0,), "jitter": -0.1}, "jitter", id="negative-jitter"),
        pytest.param({"schedule": (0,), "jitter": 1.0}, "jitter", id="jitter-100-percent"),
    ],
)
def test_retry_policy_rejects_invalid_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_retry_policy_stores_the_schedule_as_a_tuple_of_floats() -> None:
    assert (0.0, 5.0) == RetryPolicy([0, 5]).schedule  # type: ignore[arg-type]
