"""Store behaviour on both backends (a SQLite file in tmp_path, a fresh PostgreSQL database):
dedupe, unknown jobs, claim leases, one event per job, cursor pagination.

Times are injected (`now=`) wherever the store takes them, so leases and orderings are exact.
"""

from __future__ import annotations

import asyncio

import msgspec

from storage.ids import new_id
from storage.records import (
    CB_DONE,
    CB_IGNORED,
    CB_PENDING,
    JOB_COMPLETED,
    Event,
    EventFilter,
    Finish,
    JobFilter,
    NewCallback,
)
from storage.store import Store, open_store

NOW = 1_800_000_000.0


async def new_job(store: Store, *, now: float | None = None, provider: str = "generic") -> str:
    job_id = new_id("job", now)
    await store.create_job(
        job_id, provider, audio_url="https://example.com/a.wav", recording_id=None, options={},
        metadata={"k": "v"}, now=now,
    )  # fmt: skip
    return job_id


def callback(
    job_id: str | None, key: str, *, provider: str = "generic", received_at: float = NOW
) -> NewCallback:
    return NewCallback(
        id=new_id("cb", received_at),
        provider=provider,
        dedupe_key=key,
        job_id=job_id,
        provider_job_id=f"p-{key}",
        job_hint=None,
        method="POST",
        headers={"content-type": "application/json"},
        query={"a": "1"},
        body=b'{"status": "completed"}',
        received_at=received_at,
    )


def finish(job_id: str, callback_id: str | None, *, now: float = NOW, status: str = JOB_COMPLETED) -> Finish:
    transcript_id = new_id("tr", now)
    event = Event(
        id=new_id("evt", now),
        type="transcript.completed" if status == JOB_COMPLETED else "transcript.failed",
        job_id=job_id,
        transcript_id=transcript_id,
        provider="generic",
        metadata={"k": "v"},
        created_at=now,
        payload=msgspec.json.encode({"type": "transcript.completed", "data": {"id": transcript_id}}),
    )
    body = msgspec.json.encode({"id": transcript_id})
    return Finish(callback_id, job_id, status, None, transcript_id, body, event)


# -- the inbox ------------------------------------------------------------------------------------


async def test_ingest_stores_the_callback_as_received(store: Store) -> None:
    job_id = await new_job(store)
    sent = callback(job_id, "k1")
    result = await store.ingest(sent)
    assert result.id == sent.id and not result.duplicate and not result.unknown_job
    stored = await store.get_callback(sent.id)
    assert stored is not None
    assert (stored.body, stored.headers, stored.query) == (sent.body, sent.headers, sent.query)
    assert (stored.status, stored.attempts, stored.job_id) == (CB_PENDING, 0, job_id)


async def test_repeated_callback_is_a_duplicate_of_the_first(store: Store) -> None:
    job_id = await new_job(store)
    first = await store.ingest(callback(job_id, "same"))
    again = await store.ingest(callback(job_id, "same"))
    assert again.duplicate is True
    assert again.id == first.id
    assert await store.count_callbacks() == 1


async def test_duplicates_within_one_group_commit_batch_store_one_row(store: Store) -> None:
    """Concurrent retries of one callback land in the same batch: one is stored, the others
    are told they are duplicates of it."""
    job_id = await new_job(store)
    results = await asyncio.gather(*(store.ingest(callback(job_id, "same")) for _ in range(5)))
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.id for r in results}) == 1
    assert await store.count_callbacks() == 1


async def test_same_dedupe_key_of_another_provider_is_not_a_duplicate(store: Store) -> None:
    job_a, job_b = await new_job(store), await new_job(store, provider="assemblyai")
    await store.ingest(callback(job_a, "k"))
    other = await store.ingest(callback(job_b, "k", provider="assemblyai"))
    assert other.duplicate is False
    assert await store.count_callbacks() == 2


async def test_callback_for_unknown_job_is_refused_and_not_stored(store: Store) -> None:
    job_id = await new_job(store)
    results = await asyncio.gather(
        store.ingest(callback("job_doesnotexist", "x")), store.ingest(callback(job_id, "y"))
    )
    assert results[0].unknown_job is True
    assert results[1].unknown_job is False  # the same batch still stores the good one
    assert await store.count_callbacks() == 1


async def test_provider_level_callback_without_job_is_stored(store: Store) -> None:
    result = await store.ingest(callback(None, "workspace"))
    assert not result.unknown_job
    assert await store.count_callbacks(CB_PENDING) == 1


# -- claims ---------------------------------------------------------------------------------------


async def test_claimed_callback_is_not_claimed_again_until_its_lease_expires(store: Store) -> None:
    job_id = await new_job(store)
    sent = callback(job_id, "k")
    await store.ingest(sent)
    [claimed] = await store.claim_callbacks(now=NOW, lease=60, limit=10)
    assert claimed.id == sent.id and claimed.attempts == 1
    assert await store.claim_callbacks(now=NOW + 1, lease=60, limit=10) == []
    assert await store.claim_callbacks(now=NOW + 59, lease=60, limit=10) == []
    [again] = await store.claim_callbacks(now=NOW + 61, lease=60, limit=10)
    assert again.id == sent.id and again.attempts == 2


async def test_concurrent_claims_never_hand_out_a_row_twice(store: Store) -> None:
    job_id = await new_job(store)
    await asyncio.gather(*(store.ingest(callback(job_id, f"k{i}")) for i in range(40)))
    batches = await asyncio.gather(*(store.claim_callbacks(now=NOW, lease=60, limit=7) for _ in range(8)))
    ids = [c.id for batch in batches for c in batch]
    assert len(ids) == 40
    assert len(set(ids)) == 40


async def test_claims_follow_arrival_order_and_limit(store: Store) -> None:
    job_id = await new_job(store)
    for i in range(5):
        await store.ingest(callback(job_id, f"k{i}", received_at=NOW + i))
    first = await store.claim_callbacks(now=NOW + 10, lease=60, limit=3)
    assert [c.dedupe_key for c in first] == ["k0", "k1", "k2"]
    rest = await store.claim_callbacks(now=NOW + 10, lease=60, limit=3)
    assert [c.dedupe_key for c in rest] == ["k3", "k4"]


async def test_a_claimed_batch_of_callbacks_reads_each_named_job_once(store: Store) -> None:
    """`claim_callback_batch` (one statement on PostgreSQL) claims in arrival order and reads the
    jobs the callbacks name (a callback without a job id names none) and the subscriptions' version."""
    job_a, job_b = await new_job(store), await new_job(store)
    for i, job_id in enumerate((job_a, job_b, job_a, None)):
        await store.ingest(callback(job_id, f"k{i}", received_at=NOW + i))
    batch = await store.claim_callback_batch(now=NOW + 10, lease=60, limit=3)
    assert [c.dedupe_key for c in batch.callbacks] == ["k0", "k1", "k2"]
    assert set(batch.jobs) == {job_a, job_b}
    assert batch.jobs[job_a] == await store.get_job(job_a)
    assert batch.subscriptions_version == await store.subscriptions_version() is not None
    rest = await store.claim_callback_batch(now=NOW + 10, lease=60, limit=3)
    assert [c.dedupe_key for c in rest.callbacks] == ["k3"] and rest.jobs == {}
    empty = await store.claim_callback_batch(now=NOW + 10, lease=60, limit=3)
    assert empty.callbacks == [] and empty.jobs == {} and empty.subscriptions_version is None


async def test_callback_not_yet_due_is_not_claimed(store: Store) -> None:
    job_id = await new_job(store)
    sent = callback(job_id, "k")
    await store.ingest(sent)
    await store.claim_callbacks(now=NOW, lease=60, limit=10)
    await store.retry_callback(sent.id, error="provider down", next_attempt_at=NOW + 30)
    assert await store.claim_callbacks(now=NOW + 29, lease=60, limit=10) == []  # lease gone, not yet due
    [retried] = await store.claim_callbacks(now=NOW + 30, lease=60, limit=10)
    assert retried.last_error == "provider down"


async def test_settled_callback_is_never_claimed_again(store: Store) -> None:
    job_id = await new_job(store)
    sent = callback(job_id, "k")
    await store.ingest(sent)
    await store.claim_callbacks(now=NOW, lease=60, limit=10)
    await store.settle_callback(sent.id, CB_IGNORED)
    assert await store.claim_callbacks(now=NOW + 3600, lease=60, limit=10) == []


# -- finishing jobs -------------------------------------------------------------------------------


async def test_finish_job_twice_makes_one_event(store: Store) -> None:
    """A callback processed twice (after a crash, or a retry past dedupe) finishes the job once;
    the second callback is marked ignored."""
    job_id = await new_job(store)
    first_cb, second_cb = callback(job_id, "a"), callback(job_id, "b")
    await store.ingest(first_cb)
    await store.ingest(second_cb)
    assert await store.finish_job(finish(job_id, first_cb.id)) is True
    assert await store.finish_job(finish(job_id, second_cb.id)) is False

    events = await store.list_events(EventFilter(job_id=job_id))
    assert len(events.items) == 1
    job = await store.get_job(job_id)
    assert job is not None and job.status == JOB_COMPLETED and job.reconcile_at is None
    first, second = await store.get_callback(first_cb.id), await store.get_callback(second_cb.id)
    assert first is not None and first.status == CB_DONE
    assert second is not None and second.status == CB_IGNORED


async def test_concurrent_finish_job_for_one_job_creates_exactly_one_event(store: Store) -> None:
    job_id = await new_job(store)
    created = await asyncio.gather(*(store.finish_job(finish(job_id, None)) for _ in range(6)))
    assert created.count(True) == 1
    assert len((await store.list_events(EventFilter(job_id=job_id))).items) == 1


async def test_finished_job_keeps_its_transcript(store: Store) -> None:
    job_id = await new_job(store)
    done = finish(job_id, None)
    await store.finish_job(done)
    assert await store.get_transcript(job_id) == done.transcript_body
    assert await store.get_event(done.event.id) == done.event


# -- listings -------------------------------------------------------------------------------------


async def test_jobs_page_newest_first_with_cursor(store: Store) -> None:
    created = [await new_job(store, now=NOW + i) for i in range(7)]
    seen: list[str] = []
    cursor, pages = None, 0
    while True:
        page = await store.list_jobs(JobFilter(), cursor=cursor, limit=3)
        seen += [j.id for j in page.items]
        pages += 1
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert seen == list(reversed(created))


async def test_jobs_filter_by_status_provider_and_time(store: Store) -> None:
    a = await new_job(store, now=NOW)
    b = await new_job(store, now=NOW + 10, provider="assemblyai")
    await store.finish_job(finish(a, None))
    assert [j.id for j in (await store.list_jobs(JobFilter(status=JOB_COMPLETED))).items] == [a]
    assert [j.id for j in (await store.list_jobs(JobFilter(provider="assemblyai"))).items] == [b]
    assert [j.id for j in (await store.list_jobs(JobFilter(since=NOW + 5))).items] == [b]
    assert [j.id for j in (await store.list_jobs(JobFilter(until=NOW + 5))).items] == [a]


async def test_events_page_newest_first_with_cursor_and_iterate_oldest_first(store: Store) -> None:
    event_ids = []
    for i in range(7):
        job_id = await new_job(store, now=NOW + i)
        done = finish(job_id, None, now=NOW + i)
        await store.finish_job(done)
        event_ids.append(done.event.id)

    first = await store.list_events(EventFilter(), limit=4)
    assert first.has_more
    second = await store.list_events(EventFilter(), cursor=first.next_cursor, limit=4)
    assert not second.has_more and second.next_cursor is None
    assert [e.id for e in first.items + second.items] == list(reversed(event_ids))

    batches = [[e.id for e in batch] async for batch in store.iter_events(EventFilter(), batch=3)]
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [i for b in batches for i in b] == event_ids

    window = await store.list_events(EventFilter(since=NOW + 2, until=NOW + 4))
    assert [e.id for e in window.items] == [event_ids[3], event_ids[2]]


async def test_exactly_full_last_page_has_no_next_cursor(store: Store) -> None:
    for i in range(4):
        await new_job(store, now=NOW + i)
    first = await store.list_jobs(JobFilter(), limit=2)
    second = await store.list_jobs(JobFilter(), cursor=first.next_cursor, limit=2)
    assert len(second.items) == 2
    assert second.next_cursor is None


# -- migrations -----------------------------------------------------------------------------------


async def test_migrations_are_idempotent(database_url: str) -> None:
    async with open_store(database_url, migrate=False) as store:
        assert await store.db.migrate() == [
            "0001_initial",
            "0002_deliveries_due_per_subscription",
            "0003_subscriptions_version",
            "0004_deliveries_due_covers_the_lease",
            "0005_callbacks_without_job_index",
            "0006_deliveries_room_for_leases",
            "0007_deliveries_due_holds_pending_rows",
        ]
        assert await store.db.migrate() == []
    async with open_store(database_url) as store:
        await store.ping()
        async with store.db.read() as db:
            versions = [r["version"] for r in await db.fetch("SELECT version FROM schema_migrations")]
    assert versions == [1, 2, 3, 4, 5, 6, 7]
