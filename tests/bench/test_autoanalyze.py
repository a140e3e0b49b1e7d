"""`bench/dbs.py` analyzes a benchmark's PostgreSQL database while it is in use, standing in for
the autovacuum a production server runs (this machine's server has it off)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from bench import dbs
from tests.databases import ADMIN_URL


@contextlib.asynccontextmanager
async def _in_use(
    tmp_path: Path, label: str, every: float, problems: list[str]
) -> AsyncIterator[asyncpg.Connection | None]:
    """A bench database, its analyzer checking every `every` s (what it reports into `problems`),
    and a connection to it; None when the server runs autovacuum (then no analyzer runs)."""
    async with dbs.fresh_database(
        "postgres", tmp_path, ADMIN_URL, label, analyze_every=every, on_analyzer_error=problems.append
    ) as url:
        conn = await asyncpg.connect(url)
        try:
            yield None if await conn.fetchval("SHOW autovacuum") == "on" else conn
        finally:
            await conn.close()


async def _analyzed(conn: asyncpg.Connection) -> int:
    count = await conn.fetchval("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'rows'")
    return int(count or 0)


async def _until_analyzed(conn: asyncpg.Connection, times: int) -> int:
    deadline = time.monotonic() + 15
    while await _analyzed(conn) < times and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return await _analyzed(conn)


async def test_a_bench_database_is_analyzed_as_autovacuum_would(tmp_path: Path) -> None:
    """On this machine's server (autovacuum off) the bench analyzes a table once enough of it
    changed (autovacuum's rule: 50 rows + 10 %), and not while it does not change; on a server
    with autovacuum on it leaves that to the server (the last test)."""
    problems: list[str] = []
    async with _in_use(tmp_path, "autoanalyze", 0.2, problems) as conn:
        if conn is None:
            return  # the server analyzes, on its own schedule; the bench's analyzer: the last test
        await conn.execute("CREATE TABLE rows (id integer PRIMARY KEY)")
        await conn.execute("INSERT INTO rows SELECT generate_series(1, 1000)")
        assert await _until_analyzed(conn, 1) == 1
        assert await conn.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'rows'") == 1000
        await asyncio.sleep(1)  # five intervals without a change
        assert await _analyzed(conn) == 1
        await conn.execute("UPDATE rows SET id = -id WHERE id <= 100")  # 100 changed: below 50 + 10 %
        await conn.execute("INSERT INTO rows SELECT generate_series(1001, 1100)")  # 200: above it
        assert await _until_analyzed(conn, 2) == 2
        assert await conn.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'rows'") == 1100
    assert problems == []


async def test_an_analyzer_that_stops_is_reported(tmp_path: Path) -> None:
    """The analyzer's connection is cut while the database is in use: the scenario goes on, and
    leaving the database reports that its analyses stopped, and why (the run lists it among its
    errors), instead of the figures silently degrading."""
    problems: list[str] = []
    async with _in_use(tmp_path, "analyzer_cut", 0.1, problems) as conn:
        if conn is None:
            return  # no analyzer runs: the server analyzes
        deadline = time.monotonic() + 10
        cut: list[object] = []
        while not cut and time.monotonic() < deadline:  # the analyzer connects when its task first runs
            await asyncio.sleep(0.05)
            cut = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        assert cut, "the analyzer never connected"
        await asyncio.sleep(0.5)  # its next check finds the connection gone
    assert len(problems) == 1
    # asyncpg names the cut as it meets it: InterfaceError ("connection is closed") between
    # queries, ConnectionDoesNotExistError during one
    assert problems[0].startswith("the analyzer of database cb_bench_analyzer_cut_"), problems
    assert "stopped: " in problems[0] and "Error: " in problems[0] and "connection" in problems[0], problems


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
