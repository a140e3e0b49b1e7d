"""Ingest at several levels of connections (`python -m bench --connections 32,64,128`): each
server's best level is its figure, Callboard's among the levels whose p99 meets the target."""

from __future__ import annotations

import pytest

from bench.ingest import best_level
from bench.report import INGEST_P99_MS
from bench.run import parse_args


def _level(connections: int, rps: float, p99_ms: float, **extra: object) -> dict[str, object]:
    return {"connections": connections, "rps": rps, "p99_ms": p99_ms, "errors": 0, **extra}


def test_the_fastest_level_within_the_p99_limit_is_chosen() -> None:
    levels = [_level(32, 7000, 7.5), _level(64, 8000, 11.8), _level(128, 9000, 20.1)]
    assert best_level(levels, p99_ms=INGEST_P99_MS)["connections"] == 64
    # the ceiling has no limit: its fastest level
    assert best_level(levels)["connections"] == 128


def test_a_level_with_errors_or_callbacks_sent_twice_is_not_chosen() -> None:
    levels = [
        _level(32, 7000, 7.5),
        _level(64, 8000, 11.8, errors=3),
        _level(128, 8500, 15.0, reused_items=True),
    ]
    assert best_level(levels, p99_ms=INGEST_P99_MS)["connections"] == 32


def test_when_no_level_qualifies_the_fastest_is_reported_and_misses_the_target() -> None:
    levels = [_level(32, 7000, 25.0), _level(64, 8000, 31.0)]
    chosen = best_level(levels, p99_ms=INGEST_P99_MS)
    assert chosen["connections"] == 64 and chosen["p99_ms"] >= INGEST_P99_MS


def test_levels_are_given_as_a_comma_separated_list() -> None:
    assert parse_args([]).connections == (32, 64, 128)
    assert parse_args(["--connections", "16,48"]).connections == (16, 48)
    for wrong in ("0", "a,b", ""):
        with pytest.raises(SystemExit):
            parse_args(["--connections", wrong])
