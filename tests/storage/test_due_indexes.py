"""The due indexes hold pending deliveries alone (migration 0007).

A delivery that succeeds leaves them instead of getting new entries in them. The statements
that read them carry the indexes' own condition in their text, so that a plan made for any
values (SQLite's, or PostgreSQL's generic plan) can still use them. These tests pin the results
on both backends and the plans where a parameter in place of the condition would lose the
index.
"""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg

from storage.deliveries import _pg_claim_args, deliveries_listing, sqlite_claim, sqlite_claim_args
from storage.postgres import convert
from storage.records import DLV_FAILED, DLV_PENDING, DLV_SUCCEEDED
from storage.store import Store, open_store
from tests.storage.test_hot_path_writes import finish, new_job, subscription
from tests.storage.test_record_attempt import attempt


def listing(status: str) -> tuple[str, list[object]]:
    """`list_deliveries`' statement for one status, as the store runs it for a page of 50."""
    return deliveries_listing(event_id=None, subscription_id=None, status=status, cursor=None, rows=51)


async def test_each_status_lists_its_deliveries_and_only_pending_ones_are_claimed(store: Store) -> None:
    sub = await subscription(store)
    for _ in range(4):
        assert await store.finish_job(finish(await new_job(store), None, [sub]))
    now = time.time() + 1
    ok, retried, failed, untouched = await store.claim_deliveries(now=now, lease=60, limit=10, per_subscription=10)
    assert await store.record_attempt(ok, attempt(ok, now), status=DLV_SUCCEEDED, next_attempt_at=None)
    later = attempt(retried, now, code=503, error="HTTP 503")
    assert await store.record_attempt(retried, later, status=DLV_PENDING, next_attempt_at=now + 5)
    gone = attempt(failed, now, code=410, error="HTTP 410")
    assert await store.record_attempt(failed, gone, status=DLV_FAILED, next_attempt_at=None)
    await store.release_delivery(untouched.id)

    listed = {
        status: [d.id for d in (await store.list_deliveries(status=status)).items]
        for status in (DLV_SUCCEEDED, DLV_PENDING, DLV_FAILED, "cancelled")
    }
    assert listed == {
        DLV_SUCCEEDED: [ok.id],
        DLV_PENDING: sorted([retried.id, untouched.id], reverse=True),
        DLV_FAILED: [failed.id],
        "cancelled": [],
    }
    everything = await store.list_deliveries()
    assert sorted(d.id for d in everything.items) == sorted([ok.id, retried.id, failed.id, untouched.id])

    # the one released is due now, the retried one once its new time comes; neither of the others
    assert [d.id for d in await store.claim_deliveries(now=now, lease=60, limit=10, per_subscription=10)] == [
        untouched.id
    ]
    again = await store.claim_deliveries(now=now + 10, lease=60, limit=10, per_subscription=10)
    assert [d.id for d in again] == [retried.id]


async def test_sqlite_plans_read_the_partial_indexes(tmp_path: Path) -> None:
    """SQLite plans a statement once for every value of its parameters, like a generic plan."""
    async with open_store(f"sqlite:///{tmp_path / 'plans.db'}") as store:
        conn = store.db._writer  # type: ignore[attr-defined]
        assert conn is not None and conn.raw is not None

        def plan(sql: str, args: list[object] | tuple[object, ...]) -> list[str]:
            return [row[3] for row in conn.raw.execute("EXPLAIN QUERY PLAN " + sql, args)]

        claim = plan(sqlite_claim(0), sqlite_claim_args(time.time(), 60, 64, 64, ()))
        assert [s for s in claim if s.startswith("SEARCH x ")] == [
            "SEARCH x USING COVERING INDEX deliveries_subscription_due"
            " (subscription_id=? AND status=? AND next_attempt_at<?)"
        ] * 2, claim
        for status in (DLV_PENDING, DLV_FAILED):
            assert plan(*listing(status)) == ["SEARCH deliveries USING INDEX deliveries_status (status=?)"]
        # succeeded rows are not in it: found by the primary key's scan, newest first
        assert plan(*listing(DLV_SUCCEEDED)) == ["SCAN deliveries USING INDEX sqlite_autoindex_deliveries_1"]


def literal(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


async def test_postgres_generic_plans_read_the_partial_indexes(postgres_url: str) -> None:
    """The claim and the listing by status, planned once for every value of their parameters
    (`plan_cache_mode = force_generic_plan`; sequential scans off, so that the plan shows which
    indexes it can use, not what a small table costs)."""
    async with open_store(postgres_url) as store:
        sub = await subscription(store)
        for _ in range(3):
            assert await store.finish_job(finish(await new_job(store), None, [sub]))
        statements = {
            "claim": (store._pg_claim(0), list(_pg_claim_args(time.time(), 60, 64, 64, ()))),
            "pending": listing(DLV_PENDING),
            "failed": listing(DLV_FAILED),
        }
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("ANALYZE; SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")
        plans = {}
        for name, (sql, args) in statements.items():
            await conn.execute(f"PREPARE {name} AS {convert(sql)}")
            rows = await conn.fetch(f"EXPLAIN EXECUTE {name}({', '.join(literal(a) for a in args)})")
            plans[name] = "\n".join(r[0] for r in rows)
    finally:
        await conn.close()
    assert "Index Scan using deliveries_subscription_due on deliveries x" in plans["claim"], plans["claim"]
    for name in ("pending", "failed"):
        assert "Index Scan Backward using deliveries_status on deliveries" in plans[name], plans[name]
        assert "$1" in plans[name], "a generic plan, for any status"
