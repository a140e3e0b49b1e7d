"""The inbox's hot-path writes, row by row, on both backends.

On PostgreSQL a batch of callbacks, a claim and a finished job are each one statement; on SQLite
they are several statements in a (shared) transaction. Either way the rows written and the
outcomes reported must be the same, which is what these tests pin down.
"""

from __future__ import annotations

import asyncio
import time

import msgspec

from storage.ids import new_id
from storage.postgres import WRITE_POOL_MAX
from storage.records import (
    CB_DONE,
    CB_IGNORED,
    CB_PENDING,
    DLV_PENDING,
    JOB_COMPLETED,
    JOB_FAILED,
    Event,
    Finish,
    NewCallback,
)
from storage.store import Store, open_store

NOW = 1_800_000_000.0


async def new_job(store: Store) -> str:
    job_id = new_id("job", NOW)
    await store.create_job(
        job_id, "generic", audio_url="https://example.com/a.wav", recording_id=None, options={}, metadata={}, now=NOW
    )
    await store.mark_submitted(job_id, f"p-{job_id}", reconcile_at=NOW + 600)
    return job_id


def callback(job_id: str | None, key: str, *, body: bytes = b'{"status": "completed"}') -> NewCallback:
    return NewCallback(
        id=new_id("cb", NOW),
        provider="generic",
        dedupe_key=key,
        job_id=job_id,
        provider_job_id=f"p-{key}",
        job_hint="job_hint" if job_id is None else None,
        method="POST",
        headers={"content-type": "application/json", "webhook-id": key},
        query={"a": "1"} if job_id else {},
        body=body,
        received_at=NOW,
    )


def finish(job_id: str, callback_id: str | None, subscription_ids: list[str], *, failed: bool = False) -> Finish:
    transcript_id = new_id("tr", NOW)
    event = Event(
        id=new_id("evt", NOW),
        type="transcript.failed" if failed else "transcript.completed",
        job_id=job_id,
        transcript_id=transcript_id,
        provider="generic",
        metadata={"external_id": "call-1"},
        created_at=NOW,
        payload=msgspec.json.encode({"type": "transcript.completed", "data": {"id": transcript_id}}),
    )
    error = {"code": "bad_audio", "message": "no speech"} if failed else None
    return Finish(
        callback_id=callback_id,
        job_id=job_id,
        job_status=JOB_FAILED if failed else JOB_COMPLETED,
        error=error,
        transcript_id=transcript_id,
        transcript_body=msgspec.json.encode({"id": transcript_id}),
        event=event,
        subscription_ids=subscription_ids,
    )


async def subscription(store: Store, *, enabled: bool = True) -> str:
    sub_id = new_id("sub")
    await store.create_subscription(
        sub_id, url="https://example.com/hook", secret="whsec_" + "A" * 43 + "=", event_types=[], filter={},
        description=None, enabled=enabled,
    )  # fmt: skip
    return sub_id


async def test_a_mixed_batch_stores_what_it_should_and_says_why_not_for_the_rest(store: Store) -> None:
    job_id = await new_job(store)
    earlier = callback(job_id, "earlier")
    await store.write_callbacks([earlier])
    new = callback(job_id, "new", body=b"\x00\xffbinary")
    again = callback(job_id, "earlier")  # a provider's retry of one already stored
    twin_a, twin_b = callback(job_id, "twin"), callback(job_id, "twin")  # the same callback twice in one batch
    unknown = callback(new_id("job"), "unknown")
    provider_level = callback(None, "no-job")

    results = await store.write_callbacks([new, again, twin_a, twin_b, unknown, provider_level])

    assert [(r.id, r.duplicate, r.unknown_job) for r in results] == [
        (new.id, False, False),
        (earlier.id, True, False),
        (twin_a.id, False, False),
        (twin_a.id, True, False),
        (unknown.id, False, True),
        (provider_level.id, False, False),
    ]
    stored = await store.get_callback(new.id)
    assert stored is not None
    assert (stored.provider, stored.dedupe_key, stored.job_id, stored.provider_job_id, stored.job_hint) == (
        "generic", "new", job_id, "p-new", None,
    )  # fmt: skip
    assert (stored.method, dict(stored.headers), dict(stored.query), stored.body) == (
        "POST", {"content-type": "application/json", "webhook-id": "new"}, {"a": "1"}, b"\x00\xffbinary",
    )  # fmt: skip
    assert (stored.received_at, stored.status, stored.attempts, stored.next_attempt_at) == (NOW, CB_PENDING, 0, NOW)
    level = await store.get_callback(provider_level.id)
    assert level is not None and level.job_id is None and level.job_hint == "job_hint" and dict(level.query) == {}
    assert await store.get_callback(unknown.id) is None
    assert await store.get_callback(twin_b.id) is None
    assert await store.count_callbacks() == 4


async def test_a_claim_leases_in_arrival_order_and_counts_the_attempt(store: Store) -> None:
    job_id = await new_job(store)
    batch = [callback(job_id, f"k{i}") for i in range(3)]
    await store.write_callbacks(batch)
    claimed = await store.claim_callbacks(now=NOW + 1, lease=60, limit=2)
    assert [c.id for c in claimed] == sorted(c.id for c in batch)[:2]
    assert all(c.attempts == 1 for c in claimed)
    again = await store.claim_callbacks(now=NOW + 2, lease=60, limit=10)
    assert [c.id for c in again] == [sorted(c.id for c in batch)[2]]
    assert await store.claim_callbacks(now=NOW + 3, lease=60, limit=10) == []


async def test_finishing_a_job_writes_every_row_once(store: Store) -> None:
    job_id = await new_job(store)
    first, second = callback(job_id, "first"), callback(job_id, "second")
    await store.write_callbacks([first, second])
    await store.claim_callbacks(now=NOW + 1, lease=60, limit=10)
    enabled, disabled = await subscription(store), await subscription(store, enabled=False)
    done = finish(job_id, first.id, [enabled, disabled])

    assert await store.finish_job(done) is True

    job = await store.get_job(job_id)
    assert job is not None
    assert (job.status, job.error, job.reconcile_at) == (JOB_COMPLETED, None, None)
    assert job.completed_at is not None
    assert await store.get_transcript(job_id) == done.transcript_body
    assert await store.get_event(done.event.id) == done.event
    deliveries = await store.deliveries_for_events([done.event.id])
    assert [(d.subscription_id, d.status, d.attempts, d.schedule_index) for d in deliveries] == [
        (enabled, DLV_PENDING, 0, 0)
    ]
    assert deliveries[0].next_attempt_at is not None and deliveries[0].id.startswith("dlv_")
    cb = await store.get_callback(first.id)
    assert cb is not None and cb.status == CB_DONE and cb.last_error is None and cb.processed_at is not None
    assert await store.claim_callbacks(now=NOW + 2, lease=60, limit=10) == []  # both still leased

    # the same job finished again from its second callback: nothing but that callback changes
    assert await store.finish_job(finish(job_id, second.id, [enabled])) is False
    ignored = await store.get_callback(second.id)
    assert ignored is not None and ignored.status == CB_IGNORED
    assert ignored.last_error == "the job had already finished"
    assert len(await store.deliveries_for_events([done.event.id])) == 1
    assert await store.get_transcript(job_id) == done.transcript_body


async def test_a_failed_job_keeps_its_error_and_a_finish_without_callback_or_subscribers_works(
    store: Store,
) -> None:
    job_id = await new_job(store)
    done = finish(job_id, None, [], failed=True)
    assert await store.finish_job(done) is True
    job = await store.get_job(job_id)
    assert job is not None and job.status == JOB_FAILED
    assert job.error == {"code": "bad_audio", "message": "no speech"}
    assert await store.deliveries_for_events([done.event.id]) == []


async def test_writes_wake_the_other_processes_waiting_for_work(postgres_url: str) -> None:
    """PostgreSQL: a stored batch NOTIFYs `callbacks`, a finished job with subscribers `deliveries`,
    and that wakes the other processes' loops (another store here: another pool, another listener).
    A process's own writes do not wake it through the database: it wakes its loops directly, and a
    second wake-up would only cost an empty claim. (SQLite has no other process to wake; its loops
    poll and are woken in-process.)"""
    async with open_store(postgres_url) as writer, open_store(postgres_url) as other:
        job_id = await new_job(writer)
        sub_id = await subscription(writer)
        for store in (writer, other):
            for channel in ("callbacks", "deliveries"):
                await store.db.wait_for_work(channel, 0.5)  # the listener starts, sets both events once
        channels = ("callbacks", "deliveries")
        waiting = {c: asyncio.ensure_future(other.db.wait_for_work(c, 30)) for c in channels}
        own = {c: asyncio.ensure_future(writer.db.wait_for_work(c, 30)) for c in channels}
        await asyncio.sleep(0.2)
        started = time.monotonic()
        cb = callback(job_id, "wake")
        await writer.write_callbacks([cb])
        await asyncio.wait_for(waiting["callbacks"], timeout=10)
        await writer.finish_job(finish(job_id, cb.id, [sub_id]))
        await asyncio.wait_for(waiting["deliveries"], timeout=10)
        assert time.monotonic() - started < 10
        await asyncio.sleep(0.5)  # the writer's listener got the same notifications by now
        assert not any(w.done() for w in own.values())
        for w in own.values():
            w.cancel()


async def test_postgres_plans_the_batched_writes_once_and_the_rest_each_time(postgres_url: str) -> None:
    """PostgreSQL: the batched writes (`autocommit()`) run on generic plans that never scan a table
    (`storage.postgres.WRITE_PLANS`), so a statement executed again is not planned again, where the
    default `auto` planned it afresh (a custom plan) at every small batch. Claims, reads and other
    transactions keep `auto`: their plans depend on the values."""
    async with open_store(postgres_url) as store:
        sub_id = await subscription(store)
        runs = 8
        for n in range(runs):  # one after another: the write pool's one connection runs them all
            job_id = await new_job(store)
            cb = callback(job_id, f"plan-{n}")
            await store.write_callbacks([cb])
            await store.finish_job(finish(job_id, cb.id, [sub_id]))
        async with store.db.autocommit() as db:
            assert [r[0] for r in await db.fetch("SHOW plan_cache_mode")] == ["force_generic_plan"]
            assert [r[0] for r in await db.fetch("SHOW enable_seqscan")] == ["off"]
            prepared = await db.fetch("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        batched = ("INSERT INTO callbacks (", "INSERT INTO transcripts (")  # the ingest, the finish
        plans = [(r["generic_plans"], r["custom_plans"]) for r in prepared if any(s in r["statement"] for s in batched)]
        assert plans == [(runs, 0), (runs, 0)]
        for context in (store.db.read(), store.db.transaction(), store.db.autocommit(durable=False)):
            async with context as db:
                assert [r[0] for r in await db.fetch("SHOW plan_cache_mode")] == ["auto"]
                assert [r[0] for r in await db.fetch("SHOW enable_seqscan")] == ["on"]


async def test_postgres_durable_writes_beyond_the_write_pool_wait_their_turn(postgres_url: str) -> None:
    """PostgreSQL: the write pool keeps its connections between uses (`_KeptConnections`), but one
    given back while others wait for the pool goes to them. Twice as many concurrent durable writes
    as the pool has connections all run, on no more connections than the pool holds; a kept
    connection that nobody was handed would leave the rest to time out with `Unavailable`."""
    async with open_store(postgres_url) as store:

        async def write() -> int:
            async with store.db.autocommit() as db:
                rows = await db.fetch("SELECT pg_backend_pid() AS pid, pg_sleep(0.1)")
                return int(rows[0]["pid"])

        pids = await asyncio.gather(*(write() for _ in range(2 * WRITE_POOL_MAX)))
        assert len(pids) == 2 * WRITE_POOL_MAX
        assert 1 < len(set(pids)) <= WRITE_POOL_MAX
        again = await asyncio.gather(*(write() for _ in range(WRITE_POOL_MAX)))  # the kept ones, reused
        assert set(again) <= set(pids)


async def test_postgres_a_kept_write_connection_the_server_ended_is_replaced_not_used(postgres_url: str) -> None:
    """PostgreSQL: a write connection kept between uses that the server ends meanwhile (a restart,
    an administrator, an idle timeout) is not handed to the next write: that write gets a live
    connection and succeeds, as one through the pool's own acquire would."""
    async with open_store(postgres_url) as store, open_store(postgres_url) as admin:
        job_id = await new_job(store)
        first = await store.write_callbacks([callback(job_id, "before")])
        assert [(r.duplicate, r.unknown_job) for r in first] == [(False, False)]
        async with store.db.autocommit() as db:  # the kept connection the ingest just used
            kept = int((await db.fetch("SELECT pg_backend_pid() AS pid"))[0]["pid"])
        async with admin.db.read() as db:
            assert [r["ended"] for r in await db.fetch("SELECT pg_terminate_backend(?) AS ended", kept)] == [True]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the server's goodbye reaches the client's event loop
            async with admin.db.read() as db:
                rows = await db.fetch("SELECT 1 FROM pg_stat_activity WHERE pid = ?", kept)
            if not rows:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)

        again = await store.write_callbacks([callback(job_id, "after")])

        assert [(r.duplicate, r.unknown_job) for r in again] == [(False, False)]
        assert await store.get_callback(again[0].id) is not None
        async with store.db.autocommit() as db:
            assert int((await db.fetch("SELECT pg_backend_pid() AS pid"))[0]["pid"]) != kept
