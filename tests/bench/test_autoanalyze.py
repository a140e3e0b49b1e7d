"""`bench/dbs.py` analyzes a benchmark's PostgreSQL database while it is in use, standing in for
the autovacuum a production server runs (this machine's server has it off)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg

from bench import dbs
from tests.databases import ADMIN_URL


async def _analyzed(conn: asyncpg.Connection) -> int:
    count = await conn.fetchval("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'rows'")
    return int(count or 0)


async def test_a_bench_database_is_analyzed_while_in_use(tmp_path: Path) -> None:
    """On this machine's server (autovacuum off) the bench analyzes its database itself; on a
    server with autovacuum on it leaves that to the server (the next test)."""
    async with dbs.fresh_database("postgres", tmp_path, ADMIN_URL, "autoanalyze", analyze_every=0.2) as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE rows (id integer PRIMARY KEY)")
            await conn.execute("INSERT INTO rows SELECT generate_series(1, 1000)")
            expected = 2 if await conn.fetchval("SHOW autovacuum") == "off" else 0
            deadline = time.monotonic() + 15
            while await _analyzed(conn) < expected and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert await _analyzed(conn) >= expected
            if expected:  # the statistics the planner reads are current
                assert await conn.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'rows'") == 1000
        finally:
            await conn.close()


async def test_the_analyzer_leaves_a_server_with_autovacuum_on_alone() -> None:
    """With autovacuum on, `autoanalyze` returns at once (the server does it); with it off, it
    runs until cancelled."""
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        autovacuum = await conn.fetchval("SHOW autovacuum")
    finally:
        await conn.close()
    task = asyncio.ensure_future(dbs.autoanalyze(ADMIN_URL, 60.0))
    done, _ = await asyncio.wait([task], timeout=2)
    assert bool(done) == (autovacuum == "on")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
