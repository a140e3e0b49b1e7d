"""Ids are ULID-style: 26 Crockford base32 characters, 48 bits of milliseconds then 80 random bits."""

from __future__ import annotations

import re

import pytest

from storage.ids import _ALPHABET, id_time, new_id


def decode(body: str) -> int:
    value = 0
    for char in body:
        value = value * 32 + _ALPHABET.index(char)
    return value


def test_id_is_prefixed_26_crockford_characters() -> None:
    for prefix in ("job", "cb", "evt", "dlv"):
        assert re.fullmatch(prefix + r"_[0-9a-hjkmnp-tv-z]{26}", new_id(prefix))


def test_id_carries_its_milliseconds_in_the_first_48_bits() -> None:
    for now in (0.0, 1.0, 1_763_719_331.123, 1_795_000_000.999, 8_000_000_000.5):
        value = decode(new_id("x", now).removeprefix("x_"))
        assert value < 1 << 128
        assert value >> 80 == int(now * 1000)


def test_ids_sort_by_time_and_differ() -> None:
    times = [1_795_000_000 + i / 1000 for i in range(0, 5000, 7)]
    ids = [new_id("evt", t) for t in times]
    assert ids == sorted(ids)
    assert len({new_id("evt", times[0]) for _ in range(1000)}) == 1000


def test_random_bits_use_the_whole_alphabet() -> None:
    """All 80 random bits vary: across many ids every character appears in the random part."""
    seen = set().union(*(new_id("x", 1.0)[12:] for _ in range(2000)))
    assert seen == set(_ALPHABET)


def test_id_time_reads_back_the_milliseconds() -> None:
    for now in (0.0, 1_763_719_331.123, 1_795_000_000.999):
        assert id_time(new_id("dlv", now)) == int(now * 1000) / 1000
    for bad in ("dlv_short", "x_" + "!" * 26, ""):
        with pytest.raises(ValueError, match="not a Callboard id"):
            id_time(bad)
