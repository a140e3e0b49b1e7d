"""The SQLite backend's shared commits and where its statements run.

Write transactions that queue behind each other share one COMMIT, yet each stays atomic on its
own and returns only once that COMMIT is on disk. Statements run on the event loop; BEGIN, COMMIT
and statements known to be slow run on the connection's thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import sqlite as sqlite_backend
from storage.sqlite import SQLiteBackend, path_of


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
    db = SQLiteBackend(f"sqlite:///{tmp_path / 'commits.db'}")
    await db.connect()
    async with db.transaction() as tx:
        await tx.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    yield db
    await db.close()


def keys(db: SQLiteBackend) -> list[str]:
    """What another connection (another process) sees: committed rows only."""
    conn = sqlite3.connect(path_of(db.path))
    try:
        return sorted(r[0] for r in conn.execute("SELECT k FROM t"))
    finally:
        conn.close()


def count_commits(db: SQLiteBackend, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    commits: list[int] = []
    original = db._commit

    async def counting(conn: object) -> None:
        commits.append(db._group_size)
        await original(conn)  # type: ignore[arg-type]

    monkeypatch.setattr(db, "_commit", counting)
    return commits


async def insert(db: SQLiteBackend, key: str, *, fail: bool = False) -> None:
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO t (k) VALUES (?)", key)
        await asyncio.sleep(0)  # let others queue up behind this one
        if fail:
            raise RuntimeError(f"{key} fails")


async def test_queued_transactions_share_commits_and_all_are_durable(
    backend: SQLiteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "GROUP_AGE", 60.0)
    commits = count_commits(backend, monkeypatch)
    await asyncio.gather(*(insert(backend, f"k{i:03d}") for i in range(100)))
    assert keys(backend) == [f"k{i:03d}" for i in range(100)]
    assert 1 <= len(commits) < 100
    assert sum(commits) == 100


async def test_a_shared_commit_is_not_held_open_longer_than_its_limits(
    backend: SQLiteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "GROUP_MAX", 10)
    commits = count_commits(backend, monkeypatch)
    await asyncio.gather(*(insert(backend, f"k{i:03d}") for i in range(100)))
    assert max(commits) <= 10
    assert sum(commits) == 100


async def test_a_lone_transaction_commits_at_once(
    backend: SQLiteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = count_commits(backend, monkeypatch)
    await insert(backend, "alone")
    assert keys(backend) == ["alone"]
    assert commits == [1]


async def test_a_transaction_returns_only_once_its_shared_commit_is_on_disk(backend: SQLiteBackend) -> None:
    seen: dict[str, list[str]] = {}

    async def insert_and_look(key: str) -> None:
        await insert(backend, key)
        seen[key] = keys(backend)  # read by another connection the moment the block has returned

    await asyncio.gather(*(insert_and_look(f"k{i}") for i in range(20)))
    assert all(key in visible for key, visible in seen.items())


async def test_a_failing_transaction_rolls_back_alone(backend: SQLiteBackend) -> None:
    outcomes = await asyncio.gather(
        insert(backend, "a"),
        insert(backend, "b", fail=True),
        insert(backend, "c"),
        insert(backend, "d", fail=True),
        return_exceptions=True,
    )
    assert [type(o) for o in outcomes] == [type(None), RuntimeError, type(None), RuntimeError]
    assert keys(backend) == ["a", "c"]


async def test_a_failing_first_transaction_does_not_take_the_queued_ones_with_it(
    backend: SQLiteBackend,
) -> None:
    outcomes = await asyncio.gather(
        insert(backend, "first", fail=True), insert(backend, "second"), return_exceptions=True
    )
    assert isinstance(outcomes[0], RuntimeError)
    assert outcomes[1] is None
    assert keys(backend) == ["second"]


async def test_a_failed_commit_fails_every_transaction_that_shared_it(
    backend: SQLiteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = sqlite_backend._Connection.blocking
    failures = []

    async def failing_commit(self: object, sql: str, args: object = (), many: bool = False) -> list[object]:
        if sql == "COMMIT" and not failures:  # the fsync fails (a disk error) once
            failures.append(sql)
            raise sqlite3.OperationalError("disk I/O error")
        return await original(self, sql, args, many)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite_backend._Connection, "blocking", failing_commit)
    outcomes = await asyncio.gather(*(insert(backend, f"k{i}") for i in range(5)), return_exceptions=True)
    assert all(isinstance(o, sqlite3.OperationalError) for o in outcomes), outcomes
    assert keys(backend) == []
    await insert(backend, "after")  # the backend is usable again
    assert keys(backend) == ["after"]


async def test_a_cancelled_waiter_does_not_leave_the_shared_commit_open(
    backend: SQLiteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first transaction finishes while a second is queued, so it leaves the commit open for
    it; the second is cancelled just as it is handed the writer: the first must still commit."""
    monkeypatch.setattr(sqlite_backend, "GROUP_AGE", 60.0)
    entered, release = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    async def first() -> None:
        async with backend.transaction() as tx:
            await tx.execute("INSERT INTO t (k) VALUES (?)", "first")
            entered.set()
            await release.wait()
            loop.call_soon(second.cancel)  # runs after the lock is handed over, before `second` resumes

    first_task = asyncio.ensure_future(first())
    await entered.wait()
    second = asyncio.ensure_future(insert(backend, "second"))
    await asyncio.sleep(0.01)  # `second` is queued for the writer
    release.set()
    await asyncio.wait_for(first_task, timeout=5)
    with pytest.raises(asyncio.CancelledError):
        await second
    assert keys(backend) == ["first"]
    await insert(backend, "after")
    assert keys(backend) == ["after", "first"]


async def test_slow_statements_run_on_the_thread_with_the_same_results(
    backend: SQLiteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "SLOW_STATEMENT", 0.0)  # every statement counts as slow
    await asyncio.gather(*(insert(backend, f"k{i}") for i in range(10)))
    async with backend.transaction() as tx:
        await tx.executemany("INSERT INTO t (k) VALUES (?)", [("m1",), ("m2",)])
        assert len(await tx.fetch("SELECT k FROM t")) == 12
    async with backend.read() as db:
        rows = await db.fetch("SELECT k FROM t WHERE k LIKE ? ORDER BY k", "m%")
    assert [r["k"] for r in rows] == ["m1", "m2"]
    assert keys(backend) == sorted([f"k{i}" for i in range(10)] + ["m1", "m2"])


async def insert_seeing_sync(db: SQLiteBackend, key: str, *, durable: bool) -> int:
    """Insert `key`; return the `synchronous` level its commit runs under (2 FULL, 1 NORMAL)."""
    async with db.transaction(durable=durable) as tx:
        await tx.execute("INSERT INTO t (k) VALUES (?)", key)
        await asyncio.sleep(0)  # let others queue up behind this one
        [row] = await tx.fetch("PRAGMA synchronous")
        return int(row[0])


async def test_leases_skip_the_fsync_and_never_carry_a_durable_write(
    backend: SQLiteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`durable=False` commits under synchronous=NORMAL; a durable transaction queued behind one
    gets a FULL commit of its own, while a lease queued behind a durable one shares its commit."""
    commits = count_commits(backend, monkeypatch)
    assert await insert_seeing_sync(backend, "lease-alone", durable=False) == 1
    assert await insert_seeing_sync(backend, "durable-alone", durable=True) == 2
    assert commits == [1, 1]

    commits.clear()
    lease, durable = await asyncio.gather(
        insert_seeing_sync(backend, "lease-first", durable=False),
        insert_seeing_sync(backend, "durable-behind", durable=True),
    )
    assert (lease, durable) == (1, 2)
    assert commits == [1, 1]  # not shared

    commits.clear()
    durable, lease = await asyncio.gather(
        insert_seeing_sync(backend, "durable-first", durable=True),
        insert_seeing_sync(backend, "lease-behind", durable=False),
    )
    assert (durable, lease) == (2, 2)
    assert commits == [2]  # the lease rides along, durable with it

    commits.clear()
    await asyncio.gather(*(insert_seeing_sync(backend, f"lease-{i}", durable=False) for i in range(3)))
    assert commits == [3]
    assert len(keys(backend)) == 9  # every one committed, whatever its level
