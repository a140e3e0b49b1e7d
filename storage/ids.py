"""Prefixed, time-sortable ids (`job_…`, `cb_…`, `tr_…`, `evt_…`, `sub_…`, `dlv_…`, `att_…`).

The body is 26 Crockford base32 characters, ULID-style: 48 bits of milliseconds then 80 random
bits, so ids sort by creation time and cursor pagination can page on the id alone.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str, now: float | None = None) -> str:
    ms = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"
