"""The embedded default backend: SQLite through aiosqlite.

WAL mode with `synchronous=FULL`: a commit is on disk before it returns. One writer connection
serializes every write transaction (an asyncio lock keeps transactions from interleaving on it);
concurrent callbacks share commits through `storage.batching.GroupCommit`. A separate reader
connection serves reads, which WAL lets run beside the writer. Other processes (the CLI, a
second worker) share the file; `busy_timeout` makes them wait for the write lock instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from storage.backend import Backend, Executor, migration_files

BUSY_TIMEOUT_MS = 10_000


class _SQLiteExecutor:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return list(await self._conn.execute_fetchall(sql, args))

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute_fetchall(sql, args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)


def path_of(url: str) -> str:
    """`sqlite:///relative.db`, `sqlite:////abs/path.db` or a bare path → a filesystem path."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://") :]
        return rest[1:] if rest.startswith("/") else rest
    return url


class SQLiteBackend(Backend):
    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        self.path = path_of(url)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def _open(self) -> aiosqlite.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = FULL")
        await conn.execute("PRAGMA foreign_keys = ON")
        return conn

    async def connect(self) -> None:
        self._writer = await self._open()
        self._reader = await self._open()

    async def close(self) -> None:
        for conn in (self._writer, self._reader):
            if conn is not None:
                await conn.close()
        self._writer = self._reader = None

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Executor]:
        assert self._reader is not None, "backend not connected"
        yield _SQLiteExecutor(self._reader)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        assert self._writer is not None, "backend not connected"
        async with self._write_lock:
            conn = self._writer
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteExecutor(conn)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def migrate(self) -> list[str]:
        applied: list[str] = []
        async with self.transaction() as tx:
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at REAL NOT NULL)"
            )
            done = {row["version"] for row in await tx.fetch("SELECT version FROM schema_migrations")}
            for version, name, sql in migration_files(self.dialect):
                if version in done:
                    continue
                for statement in _statements(sql):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    version,
                    name,
                    time.time(),
                )
                applied.append(name)
        return applied


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]
