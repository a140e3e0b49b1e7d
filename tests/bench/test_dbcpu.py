"""`bench/dbcpu.py` reads the PostgreSQL server's CPU from /proc: it finds the server the tests
use and its reading grows with work the server does (a query run on one of its backends)."""

from __future__ import annotations

import asyncpg

from bench import dbcpu
from tests.databases import ADMIN_URL


async def test_the_server_s_cpu_grows_with_a_query_it_runs() -> None:
    meter = await dbcpu.find(ADMIN_URL)
    assert meter is not None, "the test server runs on this machine: its processes are visible"
    before = meter.seconds()
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        # work done by a backend (a child of the postmaster), for a fraction of a second
        assert await conn.fetchval("SELECT count(*) FROM generate_series(1, 5000000)") == 5_000_000
    finally:
        await conn.close()
    after = meter.seconds()
    assert before is not None and after is not None
    assert after > before


async def test_a_server_that_cannot_be_reached_gives_no_meter() -> None:
    assert await dbcpu.find("postgresql://postgres@127.0.0.1:1/test") is None
