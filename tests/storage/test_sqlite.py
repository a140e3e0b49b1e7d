"""The SQLite backend on real files: durability pragmas, group commit, migrations."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from storage.batching import GroupCommit
from storage.ids import new_id
from storage.records import IngestResult, NewCallback
from storage.sqlite import WAL_AUTOCHECKPOINT, SQLiteBackend, path_of
from storage.store import Store, open_store

NOW = 1_800_000_000.0


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'callboard.db'}"


@pytest.fixture
async def store(url: str) -> AsyncIterator[Store]:
    async with open_store(url) as s:
        yield s


async def new_job(store: Store) -> str:
    job_id = new_id("job")
    await store.create_job(
        job_id, "generic", audio_url="https://example.com/a.wav", recording_id=None, options={}, metadata={}
    )
    return job_id


def callback(job_id: str | None, key: str) -> NewCallback:
    return NewCallback(
        id=new_id("cb"),
        provider="generic",
        dedupe_key=key,
        job_id=job_id,
        provider_job_id=f"p-{key}",
        job_hint=None,
        method="POST",
        headers={"content-type": "application/json"},
        query={},
        body=b'{"status": "completed"}',
        received_at=NOW,
    )


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    """Read the file with a separate plain sqlite3 connection, as another process would."""
    conn = sqlite3.connect(path_of(url))
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_path_of_accepts_relative_absolute_and_bare_paths() -> None:
    assert path_of("sqlite:///callboard.db") == "callboard.db"
    assert path_of("sqlite:////var/lib/callboard/cb.db") == "/var/lib/callboard/cb.db"
    assert path_of("/tmp/cb.db") == "/tmp/cb.db"


async def test_wal_and_synchronous_full_are_in_force_on_both_connections(store: Store, url: str) -> None:
    async with store.db.read() as db:
        assert (await db.fetch("PRAGMA journal_mode"))[0][0] == "wal"
        assert (await db.fetch("PRAGMA synchronous"))[0][0] == 2  # FULL
        assert (await db.fetch("PRAGMA busy_timeout"))[0][0] > 0
    async with store.db.transaction() as tx:
        assert (await tx.fetch("PRAGMA synchronous"))[0][0] == 2
        assert (await tx.fetch("PRAGMA foreign_keys"))[0][0] == 1
        assert (await tx.fetch("PRAGMA wal_autocheckpoint"))[0][0] == WAL_AUTOCHECKPOINT
        assert (await tx.fetch("PRAGMA busy_timeout"))[0][0] == 0  # the writer retries on the loop instead
    assert rows(url, "PRAGMA journal_mode") == [("wal",)]  # WAL is a property of the file itself


async def test_backend_creates_missing_parent_directories(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'callboard.db'}"
    async with open_store(url) as store:
        await store.ping()
    assert (tmp_path / "a" / "b" / "callboard.db").exists()


def counting_flush(store: Store) -> tuple[list[int], Callable[[list[NewCallback]], Awaitable[list[IngestResult]]]]:
    """The store's real ingest flush, recording each batch's size in the list returned with it."""
    batches: list[int] = []

    async def flush(batch: list[NewCallback]) -> list[IngestResult]:
        batches.append(len(batch))
        return await store.write_callbacks(batch)

    return batches, flush


async def test_group_commit_puts_concurrent_ingests_in_shared_transactions(store: Store, url: str) -> None:
    """200 concurrent writes through GroupCommit over the store's real flush: fewer flushes (one
    transaction and one fsync each) than writes, every write stored and answered in order."""
    job_id = await new_job(store)
    batches, flush = counting_flush(store)
    commit: GroupCommit[NewCallback, IngestResult] = GroupCommit(flush)
    items = [callback(job_id, f"k{i}") for i in range(200)]
    results = await asyncio.gather(*(commit.submit(item) for item in items))
    await commit.close()

    assert len(batches) < len(items)
    assert sum(batches) == len(items)
    assert [r.id for r in results] == [c.id for c in items]
    assert not any(r.duplicate or r.unknown_job for r in results)
    assert rows(url, "SELECT COUNT(*) FROM callbacks") == [(200,)]


async def test_group_commit_respects_max_batch(store: Store) -> None:
    job_id = await new_job(store)
    batches, flush = counting_flush(store)
    commit: GroupCommit[NewCallback, IngestResult] = GroupCommit(flush, max_batch=16)
    await asyncio.gather(*(commit.submit(callback(job_id, f"k{i}")) for i in range(100)))
    await commit.close()
    assert sum(batches) == 100
    assert max(batches) == 16


async def test_group_commit_lingering_batch_waits_for_more(store: Store, url: str) -> None:
    """A lingering writer (the attempt records'): a batch of two waits for the items that arrive
    meanwhile and goes with them, one transaction; a lone item later is written at once, not
    after the linger (an hour here: the `wait_for` only keeps a failure from hanging the run)."""
    job_id = await new_job(store)
    batches, flush = counting_flush(store)
    commit: GroupCommit[NewCallback, IngestResult] = GroupCommit(flush, linger=3600, fill=5)
    first = [asyncio.ensure_future(commit.submit(callback(job_id, f"k{i}"))) for i in range(2)]
    await asyncio.sleep(0.01)  # the batch of two is lingering
    assert batches == []
    later = [asyncio.ensure_future(commit.submit(callback(job_id, f"j{i}"))) for i in range(3)]
    await asyncio.wait_for(asyncio.gather(*first, *later), 30)
    assert batches == [5]
    alone = await asyncio.wait_for(commit.submit(callback(job_id, "alone")), 30)  # hang guard
    await commit.close()
    assert batches == [5, 1] and not alone.duplicate
    assert rows(url, "SELECT COUNT(*) FROM callbacks") == [(6,)]


async def test_group_commit_lingering_batch_goes_once_full_or_closed(store: Store, url: str) -> None:
    """A lingering batch goes as soon as it holds `fill` items, or when the writer closes, not
    after its linger (an hour here: the `wait_for`s only keep a failure from hanging the run)."""
    job_id = await new_job(store)
    batches, flush = counting_flush(store)
    commit: GroupCommit[NewCallback, IngestResult] = GroupCommit(flush, linger=3600, fill=4)
    waiting = [asyncio.ensure_future(commit.submit(callback(job_id, f"k{i}"))) for i in range(2)]
    await asyncio.sleep(0.01)
    filling = [asyncio.ensure_future(commit.submit(callback(job_id, f"j{i}"))) for i in range(2)]
    await asyncio.wait_for(asyncio.gather(*waiting, *filling), 30)
    assert batches == [4]

    closing = [asyncio.ensure_future(commit.submit(callback(job_id, f"c{i}"))) for i in range(2)]
    await asyncio.sleep(0.01)
    assert batches == [4]  # lingering
    await asyncio.wait_for(commit.close(), 30)
    assert all(f.done() and not f.exception() for f in closing)
    assert batches == [4, 2]
    assert rows(url, "SELECT COUNT(*) FROM callbacks") == [(6,)]


async def test_group_commit_failed_flush_fails_every_waiter_of_the_batch_and_keeps_going(
    store: Store, url: str
) -> None:
    """A batch that cannot be written is rolled back: no waiter in it is told it succeeded, and
    the next batch is written normally."""
    job_id = await new_job(store)
    commit: GroupCommit[NewCallback, IngestResult] = GroupCommit(store.write_callbacks)
    unencodable: dict[str, Any] = {"x": object()}
    poisoned = msgspec.structs.replace(callback(job_id, "bad"), headers=unencodable)  # not JSON-able
    outcomes = await asyncio.gather(
        commit.submit(callback(job_id, "a")), commit.submit(poisoned), commit.submit(callback(job_id, "b")),
        return_exceptions=True,
    )  # fmt: skip
    assert all(isinstance(o, Exception) for o in outcomes), outcomes
    assert rows(url, "SELECT COUNT(*) FROM callbacks") == [(0,)]

    after = await commit.submit(callback(job_id, "c"))
    await commit.close()
    assert after.duplicate is False
    assert rows(url, "SELECT dedupe_key FROM callbacks") == [("c",)]


async def test_store_ingest_many_concurrent_calls_are_all_durable(store: Store, url: str) -> None:
    job_id = await new_job(store)
    items = [callback(job_id, f"k{i}") for i in range(300)]
    results = await asyncio.gather(*(store.ingest(item) for item in items))
    assert [r.id for r in results] == [c.id for c in items]
    # a separate connection sees every row: they were committed before ingest() returned
    assert rows(url, "SELECT COUNT(*) FROM callbacks WHERE status = 'pending'") == [(300,)]


async def test_closing_the_store_writes_what_is_queued(url: str) -> None:
    async with open_store(url) as store:
        job_id = await new_job(store)
        pending = [asyncio.ensure_future(store.ingest(callback(job_id, f"k{i}"))) for i in range(20)]
        await asyncio.sleep(0)
    assert all(f.done() and not f.exception() for f in pending)
    assert rows(url, "SELECT COUNT(*) FROM callbacks") == [(20,)]


async def test_migrations_are_idempotent(url: str) -> None:
    backend = SQLiteBackend(url)
    await backend.connect()
    try:
        assert await backend.migrate() == [
            "0001_initial",
            "0002_deliveries_due_per_subscription",
            "0003_subscriptions_version",
            "0004_deliveries_due_covers_the_lease",
            "0005_callbacks_without_job_index",
            "0006_deliveries_room_for_leases",
            "0007_deliveries_due_holds_pending_rows",
        ]
        assert await backend.migrate() == []
    finally:
        await backend.close()
    async with open_store(url) as store:  # opening migrates again: nothing to do, nothing lost
        await store.ping()
    assert rows(url, "SELECT version, name FROM schema_migrations") == [
        (1, "0001_initial"),
        (2, "0002_deliveries_due_per_subscription"),
        (3, "0003_subscriptions_version"),
        (4, "0004_deliveries_due_covers_the_lease"),
        (5, "0005_callbacks_without_job_index"),
        (6, "0006_deliveries_room_for_leases"),
        (7, "0007_deliveries_due_holds_pending_rows"),
    ]


async def test_a_second_process_style_connection_waits_for_the_write_lock(store: Store, url: str) -> None:
    """The CLI and a worker share the file: a writer that finds it locked waits (retrying for up
    to the busy timeout) instead of failing with `database is locked`."""
    job_id = await new_job(store)
    other = sqlite3.connect(path_of(url), timeout=10, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (time.time(), job_id))
        write = asyncio.ensure_future(store.ingest(callback(job_id, "waits")))
        await asyncio.sleep(0.2)
        assert not write.done()  # blocked on the lock, not failed
        # the writer waits on the event loop, not blocking it: reads are served meanwhile
        job = await store.get_job(job_id)
        assert job is not None and not write.done()
        other.execute("COMMIT")
    finally:
        other.close()
    result = await write
    assert result.duplicate is False
