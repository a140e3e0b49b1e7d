"""Prefixed, time-sortable ids (`job_…`, `cb_…`, `tr_…`, `evt_…`, `sub_…`, `dlv_…`, `att_…`).

The body is 26 Crockford base32 characters, ULID-style: 48 bits of milliseconds then 80 random
bits, so ids sort by creation time and cursor pagination can page on the id alone.

Several ids are made per callback and per delivery, so encoding goes ten bits (two characters)
at a time through a table: 13 lookups instead of 26 shifts and appends; and the random bits
come from the operating system's generator 4 KiB at a time, not one system call per id (on this
kind of virtual machine a `getrandom` call cost more than the rest of `new_id`). The buffer is
dropped in a forked child, so two processes never hand out the same bits.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # index: 10 bits, most significant first
_MS_MASK = (1 << 48) - 1
_SHIFTS = range(120, -1, -10)  # 130 bits (two leading zeros, then 128) in 13 pairs
_RANDOM_BYTES = 10
_POOL_IDS = 410  # ids per refill: 4,100 bytes from os.urandom at once


class _RandomPool(threading.local):
    """80-bit random values, read from `os.urandom` in blocks (one block per thread)."""

    def __init__(self) -> None:
        self.values: list[int] = []

    def take(self) -> int:
        values = self.values
        if not values:
            block = os.urandom(_RANDOM_BYTES * _POOL_IDS)
            values.extend(
                int.from_bytes(block[i : i + _RANDOM_BYTES], "big") for i in range(0, len(block), _RANDOM_BYTES)
            )
        return values.pop()


_pool = _RandomPool()
os.register_at_fork(after_in_child=lambda: _pool.values.clear())  # the child's thread is the forking one


def new_id(prefix: str, now: float | None = None) -> str:
    ms = int((time.time() if now is None else now) * 1000) & _MS_MASK
    value = (ms << 80) | _pool.take()
    return prefix + "_" + "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def id_after(prefix: str, at: float) -> str:
    """An id above every id `new_id(prefix, t)` makes for `t <= at`, and not above any made in a
    later millisecond: the first id of the millisecond after `at`'s."""
    value = ((int(at * 1000) + 1) & _MS_MASK) << 80
    return prefix + "_" + "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def id_time(identifier: str) -> float:
    """The creation time an id carries (seconds, to the millisecond). ValueError if it is not one."""
    body = identifier.rpartition("_")[2]
    if len(body) != 26:
        raise ValueError(f"not a Callboard id: {identifier!r}")
    value = 0
    for char in body:
        digit = _ALPHABET.find(char)
        if digit < 0:
            raise ValueError(f"not a Callboard id: {identifier!r}")
        value = value * 32 + digit
    return (value >> 80) / 1000
