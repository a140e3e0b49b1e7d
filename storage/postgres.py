"""The scale-out backend: PostgreSQL through asyncpg.

Any number of Callboard processes share one database. Rows are claimed with
`FOR UPDATE SKIP LOCKED` under leases, so workers never take the same row at once and a dead
worker's rows come back when its lease runs out. `LISTEN/NOTIFY` wakes waiting workers the moment
a transaction that made work commits, instead of after a poll interval. Migrations take an
advisory lock, so processes starting together migrate once.

Connections are pooled, in three pools by what their sessions are set for: transactions and reads;
leases (`durable=False`, commits that do not wait for the WAL flush); and the hot path's
one-statement writes (`autocommit()`), which run on generic plans (`WRITE_PLANS`). When the
server goes away (a restart), calls fail fast with
`DatabaseUnavailableError` (the HTTP layer answers 503) and the pool reconnects by itself once
the server is back; the listener connection re-establishes itself in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

import asyncpg
import structlog

from storage.backend import Backend, DatabaseUnavailableError, Executor, migration_files

log = structlog.get_logger("callboard.postgres")

MIGRATION_LOCK = 0x63616C6C  # "call": the advisory lock key held while migrating
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
POOL_MAX = 20
#: connections for leases and heartbeats, whose commits do not wait for the WAL flush
LEASE_POOL_MAX = 4
#: connections for the durable one-statement writes (`autocommit()`): the batched ingest, finish
#: and attempt-record statements, each written by one group commit at a time
WRITE_POOL_MAX = 4
#: The sessions of `autocommit()`'s pool plan each statement once (its generic plan) and never by
#: a sequential scan. Its statements are the hot path's batched writes (`storage/callbacks.py`,
#: `storage/deliveries.py`): CTEs over `unnest`ed arrays whose every table is reached by a key of
#: those arrays, so the right plan is index lookups by id whatever the values. Under the default
#: `auto`, knowing the arrays' lengths made a custom plan look cheaper, so the server planned these
#: statements again on nearly every execution at the small batches of a steady load: an attempt
#: record of two cost the server 640-687 µs of CPU a statement against 307-313 µs planned once, and
#: planning was a quarter of its CPU at 500 callbacks/s (perf). A generic plan alone is not enough:
#: one made while a table was nearly empty kept its sequential scan as the table grew, until the
#: next ANALYZE (an attempt record went from 0.25 to 1.4 ms a statement within seconds), which with
#: `enable_seqscan = off` cannot happen: every table these statements read has the index they need.
#: The claims and the reads keep `auto` (their plans depend on the values: a LIMIT, a status, a filter).
WRITE_PLANS = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"}
CHANNELS = ("callbacks", "deliveries")
#: prepared statements kept per connection: IN lists of every length make many distinct texts
STATEMENT_CACHE = 1024

_PLACEHOLDER = re.compile(r"\?")
_converted: dict[str, str] = {}

UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)


def convert(sql: str) -> str:
    """`?` placeholders → `$1, $2, …` (the store's SQL never has `?` inside literals)."""
    cached = _converted.get(sql)
    if cached is None:
        counter = iter(range(1, 10_000))
        cached = _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)
        _converted[sql] = cached
    return cached


@contextlib.contextmanager
def _unavailable_on_connection_errors() -> Iterator[None]:
    try:
        yield
    except UNAVAILABLE as exc:
        raise DatabaseUnavailableError(f"PostgreSQL is unavailable: {type(exc).__name__}: {exc}") from exc


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection coming back: nothing beyond rolling back an open
    transaction (asyncpg does that first). The store never changes session state (no SET, no
    session advisory locks, LISTEN only on its own connection), so asyncpg's default reset
    (`RESET ALL; UNLISTEN *; CLOSE ALL; SELECT pg_advisory_unlock_all()`) would only add a round
    trip to every read and every transaction."""


class _PgExecutor:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return list(await self._conn.fetch(convert(sql), *args))

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(convert(sql), *args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int | None:
        await self._conn.executemany(convert(sql), rows)
        return None  # asyncpg does not say how many rows changed


class _KeptConnections:
    """A pool whose connections are kept acquired between uses: the write pool, whose users are the
    group commits' flushes, each running one statement at a time, over and over. asyncpg's acquire
    and release cost about 57 µs of CPU each time here (a task for the acquire's timeout, another
    for the release's shield), more than a small statement's own 48 µs (`SELECT 1` in a loop, one
    core). A connection given back is kept for the next user, unless someone is waiting for the
    pool, who gets it through the pool; every use of the pool goes through here, so none waits
    while one is kept. After an error the connection goes back to the pool, which replaces it if it
    is broken, and one the server ended while it was kept is not used again (`_alive`). No more
    are kept than were in use at once, which the pool's size bounds. The lease pool is not kept:
    with it kept too, the wide drain's claims came back sooner and smaller, and the worker spent
    10-17 % more CPU per delivery (`bench.inprocess --deliveries 20000 --shape wide`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._idle: list[Any] = []
        self._waiting = 0  # users waiting for the pool

    async def _take(self) -> Any:
        while self._idle:
            conn = self._idle.pop()
            if _alive(conn):
                return conn
            await self.pool.release(conn)  # nothing to do for one asyncpg took back already
        self._waiting += 1
        try:
            return await self.pool.acquire(timeout=CONNECT_TIMEOUT)
        finally:
            self._waiting -= 1

    async def _give_back(self, conn: Any, *, healthy: bool) -> None:
        if healthy and not self._waiting and not conn.is_closed():
            self._idle.append(conn)
        else:
            await self.pool.release(conn)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        conn = await self._take()
        healthy = False
        try:
            yield conn
            healthy = True
        finally:
            await self._give_back(conn, healthy=healthy)

    async def release_all(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await self.pool.release(conn)


def _alive(conn: Any) -> bool:
    """Whether a kept connection is still open. One the server ended while it was kept (a restart,
    `pg_terminate_backend`, an idle timeout) is taken back into the pool by asyncpg itself, after
    which every call on it raises; its replacement comes from the pool."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


class PostgresBackend(Backend):
    dialect = "postgres"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    for_update = " FOR UPDATE"

    def __init__(self, url: str, *, pool_max: int = POOL_MAX) -> None:
        self.url = url
        self.pool_max = pool_max
        self._pool: asyncpg.Pool | None = None
        #: `durable=False` writes (leases, heartbeats): sessions with `synchronous_commit = off`,
        #: so their commits do not wait for a WAL flush. A later durable commit flushes the WAL up
        #: to its own record, theirs included; a crash loses only the last of them, claimed again
        self._lease_pool: asyncpg.Pool | None = None
        #: the write pool (`autocommit()` durable: see WRITE_PLANS), its connections kept between uses
        self._kept: _KeptConnections | None = None
        self._events = {channel: asyncio.Event() for channel in CHANNELS}
        self._listener_task: asyncio.Task[None] | None = None
        #: server process ids of this pool's connections: their notifications are this process's
        #: own writes, whose workers are woken directly (`Processor.wake`, `Fanout.wake`)
        self._own_pids: set[int] = set()

    async def connect(self) -> None:
        with _unavailable_on_connection_errors():
            self._pool = await self._create_pool(max_size=self.pool_max)
            self._lease_pool = await self._create_pool(
                max_size=LEASE_POOL_MAX, server_settings={"synchronous_commit": "off"}
            )
            write_pool = await self._create_pool(max_size=WRITE_POOL_MAX, server_settings=WRITE_PLANS)
        self._kept = _KeptConnections(write_pool)

    async def _create_pool(self, *, max_size: int, server_settings: dict[str, str] | None = None) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            self.url,
            min_size=1,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            max_inactive_connection_lifetime=300,
            statement_cache_size=STATEMENT_CACHE,
            reset=_keep_session,
            init=self._adopt,
            server_settings=server_settings,
        )

    def _pool_for(self, durable: bool) -> asyncpg.Pool:
        """Transactions' and reads' pool, or the lease pool."""
        pool = self._pool if durable else self._lease_pool
        assert pool is not None, "backend not connected"
        return pool

    async def _adopt(self, conn: asyncpg.Connection) -> None:
        pid = conn.get_server_pid()
        self._own_pids.add(pid)
        conn.add_termination_listener(lambda _conn: self._own_pids.discard(pid))

    async def close(self) -> None:
        if self._listener_task is not None:
            self._listener_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener_task
            self._listener_task = None
        kept, self._kept = self._kept, None
        if kept is not None:
            await kept.release_all()
        for pool in (self._pool, self._lease_pool, None if kept is None else kept.pool):
            if pool is not None:
                await pool.close()
        self._pool = self._lease_pool = None

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Executor]:
        assert self._pool is not None, "backend not connected"
        with _unavailable_on_connection_errors():
            async with self._pool.acquire(timeout=CONNECT_TIMEOUT) as conn:
                yield _PgExecutor(conn)

    @contextlib.asynccontextmanager
    async def autocommit(self, *, durable: bool = True) -> AsyncIterator[Executor]:
        """A connection outside any explicit transaction: each statement is its own transaction,
        committed (durable) when it returns. For writes that are one statement, it saves the
        BEGIN and COMMIT round trips of `transaction()`. Durable ones run on generic plans
        (`WRITE_PLANS`), on connections kept between calls (`_KeptConnections`); leases on the
        lease pool's."""
        if durable:
            assert self._kept is not None, "backend not connected"
            connection = self._kept.connection()
        else:
            connection = self._pool_for(durable=False).acquire(timeout=CONNECT_TIMEOUT)
        with _unavailable_on_connection_errors():
            async with connection as conn:
                yield _PgExecutor(conn)

    @contextlib.asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[Executor]:
        with _unavailable_on_connection_errors():
            async with self._pool_for(durable).acquire(timeout=CONNECT_TIMEOUT) as conn, conn.transaction():
                yield _PgExecutor(conn)

    async def migrate(self) -> list[str]:
        applied: list[str] = []
        async with self.transaction() as tx:
            await tx.execute("SELECT pg_advisory_xact_lock(?)", MIGRATION_LOCK)
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            done = {row["version"] for row in await tx.fetch("SELECT version FROM schema_migrations")}
            for version, name, sql in migration_files(self.dialect):
                if version in done:
                    continue
                await tx.execute(sql)  # the whole script (simple query protocol: several statements)
                await tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    version,
                    name,
                    time.time(),
                )
                applied.append(name)
        return applied

    # -- LISTEN / NOTIFY --------------------------------------------------------------------------

    async def notify(self, executor: Executor, channel: str) -> None:
        await executor.execute(f"NOTIFY callboard_{channel}")

    async def wait_for_work(self, channel: str, timeout: float) -> None:
        if self._listener_task is None or self._listener_task.done():
            self._listener_task = asyncio.create_task(self._listen(), name="pg-listener")
        event = self._events[channel]
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        event.clear()

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        if pid in self._own_pids:
            # written by this process: it woke its own workers already, and waking them again
            # would only cost an empty claim
            return
        name = channel.removeprefix("callboard_")
        if name in self._events:
            self._events[name].set()

    async def _listen(self) -> None:
        """Hold a LISTEN connection; reconnect with backoff when it drops."""
        delay = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel in CHANNELS:
                    await conn.add_listener(f"callboard_{channel}", self._on_notify)
                delay = 0.5
                for event in self._events.values():  # work may have arrived while we were not listening
                    event.set()
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("postgres.listener_lost", error=f"{type(exc).__name__}: {exc}", retry_in=delay)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=1)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
