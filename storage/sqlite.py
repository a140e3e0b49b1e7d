"""The embedded default backend: SQLite through aiosqlite.

WAL mode with `synchronous=FULL`: a commit is on disk before it returns. One writer connection
serializes every write transaction (an asyncio lock keeps transactions from interleaving on it);
concurrent callbacks share commits through `storage.batching.GroupCommit`. A separate reader
connection serves reads, which WAL lets run beside the writer. Other processes (the CLI, a
second worker) share the file; `busy_timeout` makes them wait for the write lock instead of failing.

Write transactions that queue up behind each other share one commit (one fsync): while others
wait for the writer, a finished transaction leaves its database transaction open for them and is
released with all of them at the commit, at most `GROUP_MAX` transactions or `GROUP_AGE` seconds
later. Each keeps its own atomicity (a SAVEPOINT, rolled back alone when its block raises) and
its durability (`transaction()` returns only once the shared COMMIT is on disk; if that COMMIT
fails, every transaction in it raises). A lone transaction commits at once, as before. Without
this, every processed callback and every delivery attempt paid an fsync of its own.
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
GROUP_MAX = 256  # transactions sharing one commit, at most
GROUP_AGE = 0.005  # seconds a shared commit may be held open for transactions still queued


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
        self._queued = 0  # transactions waiting for the writer
        self._group: asyncio.Future[None] | None = None  # the open, shared transaction's commit
        self._group_size = 0  # transactions finished inside it
        self._group_opened = 0.0
        self._flusher: asyncio.Future[None] | None = None

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
        conn = self._writer
        self._queued += 1
        try:
            await self._write_lock.acquire()
        except BaseException:
            self._queued -= 1
            if self._group is not None and not self._queued and not self._write_lock.locked():
                # the shared commit was left open for this one: it must not wait for the next writer
                self._flusher = asyncio.ensure_future(self._commit_left_open())
            raise
        self._queued -= 1
        try:
            if self._group is None:
                await conn.execute("BEGIN IMMEDIATE")
                self._group = asyncio.get_running_loop().create_future()
                self._group_size, self._group_opened = 0, time.monotonic()
            group = self._group
            # the first transaction of a group is the database transaction; later ones nest in it
            nested = self._group_size > 0
            if nested:
                await conn.execute("SAVEPOINT cb_tx")
            try:
                yield _SQLiteExecutor(conn)
            except BaseException as exc:
                await self._undo(conn, nested, exc)
                raise
            if nested:
                await conn.execute("RELEASE cb_tx")
            self._group_size += 1
        finally:
            try:
                if self._group is not None and (
                    not self._queued
                    or self._group_size >= GROUP_MAX
                    or time.monotonic() - self._group_opened >= GROUP_AGE
                ):
                    await self._commit(conn)
            finally:
                self._write_lock.release()
        await asyncio.shield(group)  # durable: the shared COMMIT is done

    async def _commit(self, conn: aiosqlite.Connection) -> None:
        group, self._group = self._group, None
        assert group is not None
        try:
            if self._group_size:
                await conn.execute("COMMIT")
            else:  # every transaction of the group was rolled back
                await conn.execute("ROLLBACK")
        except BaseException as exc:
            with contextlib.suppress(Exception):
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
            failure = exc if isinstance(exc, Exception) else RuntimeError("the commit was cancelled")
            group.set_exception(failure)
            group.exception()  # retrieved: waiters see it through shield(), nobody else has to
            raise
        group.set_result(None)

    async def _commit_left_open(self) -> None:
        async with self._write_lock:
            if self._group is not None and not self._queued:
                assert self._writer is not None
                await self._commit(self._writer)

    async def _undo(self, conn: aiosqlite.Connection, nested: bool, exc: BaseException) -> None:
        """Roll back one transaction's block; if SQLite already rolled back the whole group, fail it."""
        try:
            if nested and conn.in_transaction:
                await conn.execute("ROLLBACK TO cb_tx")
                await conn.execute("RELEASE cb_tx")
                return
            if conn.in_transaction and self._group_size == 0:  # alone in the group: plain rollback
                await conn.execute("ROLLBACK")
        except Exception as undo_exc:
            exc = undo_exc
        if conn.in_transaction:
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
        group, self._group = self._group, None
        if group is not None and not group.done():
            if self._group_size:  # earlier transactions of the group were lost with it
                group.set_exception(exc if isinstance(exc, Exception) else RuntimeError("rolled back"))
                group.exception()
            else:
                group.set_result(None)

    async def migrate(self) -> list[str]:
        applied: list[str] = []
        async with self.transaction() as tx:
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at REAL NOT NULL)"
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
