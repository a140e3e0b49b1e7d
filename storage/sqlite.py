"""The embedded default backend: SQLite through aiosqlite, with quick statements run inline.

WAL mode with `synchronous=FULL`: a commit is on disk before it returns. One writer connection
serializes every write transaction (an asyncio lock keeps transactions from interleaving on it);
concurrent callbacks share commits through `storage.batching.GroupCommit`. A separate reader
connection serves reads, which WAL lets run beside the writer. Other processes (the CLI, a
second worker) share the file; `busy_timeout` makes them wait for the write lock instead of failing.

Where statements run: the store's statements are point queries and small writes that take
microseconds, while a hop to a database thread and back costs tens of microseconds and, with a
busy event loop, waits for the GIL. So statements run inline on the event loop, and only what can
block goes to the connection's aiosqlite thread: `COMMIT` (the fsync, and the WAL checkpoint), and
any statement whose recent executions took longer than `SLOW_STATEMENT` (a claim over a large
backlog, a count over a big table), judged per SQL text. `BEGIN IMMEDIATE` only blocks when
another process holds the write lock, so the writer connection has no busy handler: it begins
inline, and when the lock is taken it sleeps on the event loop and tries again (SQLite's own
busy handler's delays, `BUSY_TIMEOUT_MS` in all) instead of blocking a thread. A round trip
through the thread for every BEGIN cost more than the transaction itself under load (2.3 ms
average, waiting behind the callbacks the event loop had ready). A connection is never used by
both at once: the writer is held under its lock throughout, and a statement sent to the thread
is awaited to its end.

Leases and heartbeats (`transaction(durable=False)`) commit with `synchronous=NORMAL`: no fsync of
their own, made durable by the next commit that has one (the WAL is written in order, so nothing
later survives a power failure without them). A durable transaction never joins a group opened
by such a one; the group is committed first. On this machine an fsync cost 80-130 µs of system
CPU by itself, and a claim of the processor or of the delivery worker that did not share a
commit with a durable write paid one.

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
BUSY_DELAYS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.025, 0.025, 0.05, 0.05, 0.1)  # sqlite3.c
GROUP_MAX = 256  # transactions sharing one commit, at most
GROUP_AGE = 0.005  # seconds a shared commit may be held open for transactions still queued
SLOW_STATEMENT = 0.001  # seconds: a statement whose recent runs average more goes to the thread
STATEMENT_CACHE = 512
#: pages of WAL after which a commit checkpoints (SQLite's default is 1000). The commit that runs
#: a checkpoint holds every callback of its batch for as long as the copy and fsync take; smaller,
#: more frequent checkpoints keep that stall short, and the stall is what ingest's p99 measured.
WAL_AUTOCHECKPOINT = 256


class _Connection:
    """One SQLite connection, opened and owned by aiosqlite.

    aiosqlite's thread runs what can block (`COMMIT`, slow statements); quick
    statements run inline on the same `sqlite3.Connection` (opened with `check_same_thread=False`),
    never at the same time as the thread: the writer is used under its lock only, and a statement
    sent to the thread is awaited to its end.
    """

    def __init__(self, path: str, name: str) -> None:
        self.path = path
        self.name = name
        self.aio: aiosqlite.Connection | None = None
        self._cost: dict[str, float] = {}  # SQL text → recent seconds per run (moving average)
        self.changed = 0  # rows the last executemany inserted, updated or deleted

    async def open(self, *, busy_handler: bool = True) -> None:
        aio = await aiosqlite.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
            cached_statements=STATEMENT_CACHE,
        )
        try:
            aio.row_factory = sqlite3.Row
            for pragma in (
                f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
                "PRAGMA journal_mode = WAL",
                "PRAGMA synchronous = FULL",
                f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}",
                "PRAGMA foreign_keys = ON",
            ):
                await aio.execute(pragma)
            if not busy_handler:
                await aio.execute("PRAGMA busy_timeout = 0")
        except BaseException:
            await aio.close()
            raise
        self.aio = aio

    async def close(self) -> None:
        if self.aio is not None:
            aio, self.aio = self.aio, None
            await aio.close()

    @property
    def raw(self) -> sqlite3.Connection | None:
        """aiosqlite's own `sqlite3.Connection`, for the statements quick enough to run inline."""
        return None if self.aio is None else self.aio._conn  # aiosqlite exposes no public accessor

    async def blocking(self, sql: str, args: Any = (), many: bool = False) -> list[Any]:
        """Run one statement on aiosqlite's thread; even when cancelled, return only once it is done."""
        assert self.aio is not None, "backend not connected"
        future: asyncio.Future[Any] = asyncio.ensure_future(
            self.aio.executemany(sql, args) if many else self.aio.execute_fetchall(sql, args)
        )
        try:
            result: Any = await asyncio.shield(future)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await future  # nothing else may touch the connection while the thread still uses it
            raise
        if many:
            self.changed = result.rowcount
            return []
        return list(result)

    def _run(self, sql: str, args: Any, many: bool) -> list[Any]:
        assert self.raw is not None, "backend not connected"
        if many:
            self.changed = self.raw.executemany(sql, args).rowcount
            return []
        return self.raw.execute(sql, args).fetchall()

    async def begin_immediate(self) -> None:
        """`BEGIN IMMEDIATE` inline (the writer has no busy handler); while another process holds
        the write lock, sleep and retry for up to `BUSY_TIMEOUT_MS`, then raise its "locked" error."""
        assert self.raw is not None, "backend not connected"
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        for attempt in range(1 << 30):
            try:
                self.raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", sqlite3.SQLITE_BUSY) != sqlite3.SQLITE_BUSY:
                    raise
                delay = BUSY_DELAYS[min(attempt, len(BUSY_DELAYS) - 1)]
                if time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)

    async def run(self, sql: str, args: Any, *, many: bool = False) -> list[Any]:
        cost = self._cost.get(sql)
        started = time.perf_counter()
        if cost is not None and cost >= SLOW_STATEMENT:
            rows = await self.blocking(sql, args, many)
        else:
            rows = self._run(sql, args, many)
        took = time.perf_counter() - started
        if len(self._cost) > 4 * STATEMENT_CACHE:
            self._cost.clear()
        self._cost[sql] = took if cost is None else cost * 0.75 + took * 0.25
        return rows

    @property
    def in_transaction(self) -> bool:
        return self.raw is not None and self.raw.in_transaction


class _SQLiteExecutor:
    def __init__(self, conn: _Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return await self._conn.run(sql, args)

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.run(sql, args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int | None:
        await self._conn.run(sql, rows, many=True)
        return self._conn.changed


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
        self._writer: _Connection | None = None
        self._reader: _Connection | None = None
        self._write_lock = asyncio.Lock()
        self._queued = 0  # transactions waiting for the writer
        self._group: asyncio.Future[None] | None = None  # the open, shared transaction's commit
        self._group_size = 0  # transactions finished inside it
        self._group_opened = 0.0
        self._group_durable = True  # its COMMIT waits for the disk (synchronous=FULL)
        self._synchronous_full = True  # the writer connection's setting
        self._flusher: asyncio.Future[None] | None = None

    async def _open(self, name: str, *, busy_handler: bool = True) -> _Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = _Connection(self.path, name)
        await conn.open(busy_handler=busy_handler)
        return conn

    async def connect(self) -> None:
        self._writer = await self._open("callboard-sqlite-writer", busy_handler=False)
        self._reader = await self._open("callboard-sqlite-reader")

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
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[Executor]:
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
            if self._group is not None and durable and not self._group_durable:
                await self._commit(conn)  # a durable write never shares a commit that skips the fsync
            if self._group is None:
                if durable != self._synchronous_full:  # only between transactions
                    _statement(conn, f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
                    self._synchronous_full = durable
                await conn.begin_immediate()
                self._group = asyncio.get_running_loop().create_future()
                self._group_size, self._group_opened = 0, time.monotonic()
                self._group_durable = durable
            group = self._group
            # the first transaction of a group is the database transaction; later ones nest in it
            nested = self._group_size > 0
            if nested:
                _statement(conn, "SAVEPOINT cb_tx")
            try:
                yield _SQLiteExecutor(conn)
            except BaseException as exc:
                self._undo(conn, nested, exc)
                raise
            if nested:
                _statement(conn, "RELEASE cb_tx")
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

    async def _commit(self, conn: _Connection) -> None:
        group, self._group = self._group, None
        assert group is not None
        try:
            if self._group_size:
                await conn.blocking("COMMIT")
            else:  # every transaction of the group was rolled back
                _statement(conn, "ROLLBACK")
        except BaseException as exc:
            with contextlib.suppress(Exception):
                if conn.in_transaction:
                    _statement(conn, "ROLLBACK")
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

    def _undo(self, conn: _Connection, nested: bool, exc: BaseException) -> None:
        """Roll back one transaction's block; if SQLite already rolled back the whole group, fail it."""
        try:
            if nested and conn.in_transaction:
                _statement(conn, "ROLLBACK TO cb_tx")
                _statement(conn, "RELEASE cb_tx")
                return
            if conn.in_transaction and self._group_size == 0:  # alone in the group: plain rollback
                _statement(conn, "ROLLBACK")
        except Exception as undo_exc:
            exc = undo_exc
        if conn.in_transaction:
            with contextlib.suppress(Exception):
                _statement(conn, "ROLLBACK")
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


def _statement(conn: _Connection, sql: str) -> None:
    assert conn.raw is not None, "backend not connected"
    conn.raw.execute(sql)


def _statements(sql: str) -> list[str]:
    """A script's statements: split at semicolons, pieces joined until they make a complete
    statement (a trigger's body has semicolons of its own)."""
    statements, pending = [], ""
    for piece in sql.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        statements.append(pending.strip())
    return statements
