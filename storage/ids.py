"""Prefixed, time-sortable ids (`job_…`, `cb_…`, `tr_…`, `evt_…`, `sub_…`, `dlv_…`, `att_…`).

The body is 26 Crockford base32 characters, ULID-style: 48 bits of milliseconds then 80 random
bits, so ids sort by creation time and cursor pagination can page on the id alone.

Several ids are made per callback and per delivery, so encoding goes ten bits (two characters)
at a time through a table: 13 lookups instead of 26 shifts and appends.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # index: 10 bits, most significant first
_MS_MASK = (1 << 48) - 1
_SHIFTS = range(120, -1, -10)  # 130 bits (two leading zeros, then 128) in 13 pairs


def new_id(prefix: str, now: float | None = None) -> str:
    ms = int((time.time() if now is None else now) * 1000) & _MS_MASK
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return prefix + "_" + "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])
