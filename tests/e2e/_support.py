"""Shared e2e helpers: reading a Callboard database directly, as an operator would, and CLI checks.

SQLite files are opened read-only with `sqlite3`; PostgreSQL databases with a plain asyncpg
connection. Queries use `?` placeholders for both.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
from typing import Any

import asyncpg

from storage.sqlite import path_of
from tests.harness import CallboardProcess


def _postgres_fetch(url: str, sql: str, args: tuple[Any, ...]) -> list[Any]:
    numbers = itertools.count(1)
    converted = re.sub(r"\?", lambda _: f"${next(numbers)}", sql)

    async def go() -> list[Any]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return list(await conn.fetch(converted, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def query(target: CallboardProcess | str, sql: str, *args: Any) -> list[Any]:
    """Run one read query against a process's database (or a database URL); rows support `row["column"]`."""
    url = target if isinstance(target, str) else target.env["CALLBOARD_DATABASE_URL"]
    if url.startswith(("postgres://", "postgresql://")):
        return _postgres_fetch(url, sql, args)
    conn = sqlite3.connect(f"file:{path_of(url)}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, args))
    finally:
        conn.close()


def count(target: CallboardProcess | str, table: str) -> int:
    return int(query(target, f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])


def assert_one_line_error(stderr: str) -> None:
    """The CLI's contract for failures: one readable line on stderr, never a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("callboard: "), stderr
