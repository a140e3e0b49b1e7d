"""Claiming due deliveries, on both backends.

On PostgreSQL the claim takes each enabled subscription's first due rows (LATERAL … LIMIT); on
SQLite it finds each subscription's cut-off row by an index range scan. The deliveries leased
must be the same: at most `per_subscription` per endpoint, earliest first, enabled subscriptions
only, the excluded ones left out, leased rows skipped until their lease runs out, `limit` in all.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

import asyncpg

from storage.deliveries import sqlite_claim, sqlite_claim_args
from storage.store import Store, open_store
from tests.storage.test_hot_path_writes import finish, new_job, subscription


async def test_a_claim_is_capped_per_subscription_and_skips_disabled_excluded_and_leased(store: Store) -> None:
    a, b, c = await subscription(store), await subscription(store), await subscription(store)
    by_sub: dict[str, list[str]] = {a: [], b: [], c: []}
    for _ in range(3):
        done = finish(await new_job(store), None, [a, b, c])
        assert await store.finish_job(done)
        for d in await store.deliveries_for_events([done.event.id]):
            by_sub[d.subscription_id].append(d.id)
        time.sleep(0.002)  # distinct next_attempt_at, in event order
    await store.update_subscription(c, enabled=False)
    now = time.time() + 1

    first = await store.claim_deliveries(now=now, lease=60, limit=10, per_subscription=2)
    assert sorted(d.id for d in first) == sorted(by_sub[a][:2] + by_sub[b][:2])
    earliest_first = sorted([by_sub[a][0], by_sub[b][0]]) + sorted([by_sub[a][1], by_sub[b][1]])
    assert [d.id for d in first] == earliest_first  # by next_attempt_at (one per event), then id

    second = await store.claim_deliveries(now=now, lease=60, limit=10, per_subscription=2)
    assert sorted(d.id for d in second) == sorted([by_sub[a][2], by_sub[b][2]])
    assert await store.claim_deliveries(now=now, lease=60, limit=10, per_subscription=2) == []

    # the leases run out: everything due again, but not the excluded endpoint, and `limit` in all
    later = now + 61
    only_b = await store.claim_deliveries(now=later, lease=60, limit=10, per_subscription=2, exclude=[a])
    assert sorted(d.id for d in only_b) == sorted(by_sub[b][:2])
    one = await store.claim_deliveries(now=later, lease=60, limit=1, per_subscription=5, exclude=[b])
    assert [d.id for d in one] == [by_sub[a][0]]
    rest = await store.claim_deliveries(now=later, lease=60, limit=10, per_subscription=5)
    assert sorted(d.id for d in rest) == sorted(by_sub[a][1:] + by_sub[b][2:])

    # nothing is due before it is due
    await store.update_subscription(c, enabled=True)
    assert await store.claim_deliveries(now=now - 3600, lease=60, limit=10, per_subscription=5) == []
    again = await store.claim_deliveries(now=later, lease=60, limit=10, per_subscription=5)
    assert sorted(d.id for d in again) == sorted(by_sub[c])


async def test_a_claimed_batch_carries_each_event_and_subscription_once_per_id(store: Store) -> None:
    """`claim_delivery_batch` (one statement on PostgreSQL) claims what `claim_deliveries` claims and reads
    the events and subscriptions the worker needs to send them."""
    a, b = await subscription(store), await subscription(store)
    finished = []
    for _ in range(3):
        done = finish(await new_job(store), None, [a, b])
        assert await store.finish_job(done)
        finished.append(done)
    now = time.time() + 1

    batch = await store.claim_delivery_batch(now=now, lease=60, limit=4, per_subscription=2)
    assert len(batch.deliveries) == 4
    due = [d.next_attempt_at for d in batch.deliveries]
    assert due == sorted(t for t in due if t is not None)  # every one due, earliest first
    claimed_events = {d.event_id for d in batch.deliveries}
    assert set(batch.events) == claimed_events
    for done in finished:
        if done.event.id in claimed_events:
            assert batch.events[done.event.id].payload == done.event.payload
            assert batch.events[done.event.id].metadata == done.event.metadata
    assert set(batch.subscriptions) == {a, b}
    stored_a = await store.get_subscription(a)
    assert stored_a is not None and batch.subscriptions[a] == stored_a

    rest = await store.claim_delivery_batch(now=now, lease=60, limit=10, per_subscription=2)
    assert len(rest.deliveries) == 2 and set(rest.events) == {d.event_id for d in rest.deliveries}
    empty = await store.claim_delivery_batch(now=now, lease=60, limit=10, per_subscription=2)
    assert empty.deliveries == [] and empty.events == {} and empty.subscriptions == {}


async def test_rows_another_claim_holds_are_replaced_by_the_next_due_on_postgres(postgres_url: str) -> None:
    """While another transaction holds the earliest due deliveries locked (a concurrent claim),
    a claim skips them and still takes `limit`: the next ones due. A claim that comes back short
    means nothing else was due, which the worker takes as its cue to wait."""
    async with open_store(postgres_url) as store:
        sub = await subscription(store)
        ids = []
        for _ in range(6):
            done = finish(await new_job(store), None, [sub])
            assert await store.finish_job(done)
            ids += [d.id for d in await store.deliveries_for_events([done.event.id])]
            time.sleep(0.002)  # distinct next_attempt_at, in event order
        now = time.time() + 1
        other = await asyncpg.connect(postgres_url)
        try:
            async with other.transaction():
                held = await other.fetch(
                    "SELECT id FROM deliveries WHERE id = ANY($1::text[]) FOR UPDATE", ids[:2]
                )
                assert len(held) == 2
                claimed = await store.claim_deliveries(now=now, lease=60, limit=2, per_subscription=10)
                assert [d.id for d in claimed] == ids[2:4]
        finally:
            await other.close()
        rest = await store.claim_deliveries(now=now, lease=60, limit=10, per_subscription=10)
        assert sorted(d.id for d in rest) == sorted(ids[:2] + ids[4:])


async def test_a_sqlite_claim_reads_what_it_takes_not_the_whole_backlog(tmp_path: Path) -> None:
    """The work of a claim of 16 (SQLite's virtual-machine steps, counted by its progress
    handler: the same on every machine, unlike its time) does not grow with the endpoint's
    backlog. It once read every pending row of the endpoint on every claim: with twenty times the
    backlog, nearly four times the steps."""
    async with open_store(f"sqlite:///{tmp_path / 'claim.db'}") as store:
        sub = await subscription(store)

        async def add_due(n: int) -> None:
            async def one() -> None:
                assert await store.finish_job(finish(await new_job(store), None, [sub]))

            await asyncio.gather(*(one() for _ in range(n)))

        async def steps_of_a_claim(now: float) -> int:
            conn = store.db._writer  # type: ignore[attr-defined]
            assert conn is not None and conn.raw is not None
            steps = 0

            def count() -> int:
                nonlocal steps
                steps += 1
                return 0  # go on

            conn.raw.set_progress_handler(count, 100)
            try:
                claimed = await store.claim_deliveries(now=now, lease=60, limit=16, per_subscription=16)
            finally:
                conn.raw.set_progress_handler(None, 0)
            assert len(claimed) == 16
            return steps

        await add_due(40)
        small = await steps_of_a_claim(time.time() + 1)
        await add_due(760)
        large = await steps_of_a_claim(time.time() + 1000)  # the first claim's leases have run out
    assert large < 1.5 * small, (small, large)


async def test_a_sqlite_claim_skips_leased_rows_in_the_index_alone(tmp_path: Path) -> None:
    """Every read of `deliveries` in the SQLite claim is of deliveries_subscription_due alone, the
    lease included (migration 0004): a row leased to a worker is skipped in the index, not looked
    up in the table first. For 100 endpoints with rows leased, reading a claim of 200 took 4.9 ms
    that way and 1.8 ms from the index alone."""
    async with open_store(f"sqlite:///{tmp_path / 'claim.db'}") as store:
        conn = store.db._writer  # type: ignore[attr-defined]
        assert conn is not None and conn.raw is not None
        args = sqlite_claim_args(time.time(), 60, 200, 64, ["sub_excluded"])
        plan = [row[3] for row in conn.raw.execute("EXPLAIN QUERY PLAN " + sqlite_claim(1), args)]
    reads = [step for step in plan if step.startswith(("SEARCH x ", "SCAN x"))]
    assert len(reads) == 2, plan  # the cut's subquery, then the rows up to it
    assert all("USING COVERING INDEX deliveries_subscription_due " in step for step in reads), plan
    # the cut row's due time, by its key: one row an endpoint, the only lookup in the table
    assert [step for step in plan if step.startswith(("SEARCH y ", "SCAN y"))] == [
        "SEARCH y USING INDEX sqlite_autoindex_deliveries_1 (id=?)"
    ], plan


async def test_a_sqlite_database_from_before_0004_migrates_with_its_backlog(tmp_path: Path) -> None:
    """A database made before migrations 0004 and 0007 (the claim's index without the lease, over
    every status), deliveries pending and one leased, takes the new indexes on opening and claims
    as before."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    async with open_store(url) as store:
        sub = await subscription(store)
        for _ in range(3):
            assert await store.finish_job(finish(await new_job(store), None, [sub]))
        [leased] = await store.claim_deliveries(now=time.time() + 1, lease=600, limit=1, per_subscription=8)
    with contextlib.closing(sqlite3.connect(tmp_path / "old.db")) as db, db:  # back to migration 0003's schema
        db.execute("DROP INDEX deliveries_subscription_due")
        db.execute("DROP INDEX deliveries_status")
        columns = "subscription_id, status, next_attempt_at, id"
        db.execute(f"CREATE INDEX deliveries_subscription_due ON deliveries ({columns})")
        db.execute("CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at)")
        db.execute("DELETE FROM schema_migrations WHERE version IN (4, 7)")
    async with open_store(url) as store:
        claimed = await store.claim_deliveries(now=time.time() + 1, lease=60, limit=10, per_subscription=8)
        assert len(claimed) == 2 and leased.id not in {d.id for d in claimed}
    with contextlib.closing(sqlite3.connect(tmp_path / "old.db")) as db:
        schema = "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'deliveries' AND sql IS NOT NULL"
        indexes = dict(db.execute(schema))
        versions = [v for (v,) in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [1, 2, 3, 4, 5, 6, 7]
    assert set(indexes) == {"deliveries", "deliveries_subscription_due", "deliveries_status"}
    due = " ".join(indexes["deliveries_subscription_due"].split())
    assert due.endswith("(subscription_id, status, next_attempt_at, id, lease_until) WHERE status = 'pending'")


async def test_a_postgres_claim_leases_each_delivery_on_its_own_page(postgres_url: str) -> None:
    """A lease is written in place (a HOT update, migration 0006): the claimed rows' new versions
    stay on the pages of the old ones, so no index gets new entries for them."""
    pages = "SELECT id, (ctid::text::point)[0] AS page FROM deliveries"
    async with open_store(postgres_url) as store:
        sub = await subscription(store)
        for _ in range(60):  # more than one page's worth at the table's fill factor
            assert await store.finish_job(finish(await new_job(store), None, [sub]))
        async with store.db.read() as db:
            before = {r["id"]: r["page"] for r in await db.fetch(pages)}
        claimed = await store.claim_deliveries(now=time.time() + 1, lease=60, limit=60, per_subscription=60)
        assert len(claimed) == 60
        async with store.db.read() as db:
            after = {r["id"]: r["page"] for r in await db.fetch(pages)}
            [options] = await db.fetch("SELECT reloptions FROM pg_class WHERE relname = 'deliveries'")
    assert len(set(before.values())) > 1, "the rows span several pages"
    assert after == before
    assert options["reloptions"] == ["fillfactor=50"]
