"""Retention on both backends: finished work older than the cutoff goes, pending work stays."""

from __future__ import annotations

import time

import msgspec

import storage.prune
from storage.ids import new_id
from storage.records import CB_DONE, Event, Finish, NewCallback
from storage.store import open_store


async def _finished_job(store, *, subscription_id: str | None) -> str:
    job_id = new_id("job")
    await store.create_job(job_id, "generic", audio_url="https://x/a.wav", recording_id=None, options={}, metadata={})
    await store.mark_submitted(job_id, f"p-{job_id}", reconcile_at=time.time() + 600)
    cb = await store.ingest(
        NewCallback(
            new_id("cb"), "generic", f"k-{job_id}", job_id, f"p-{job_id}", None, "POST", {}, {}, b"{}", time.time()
        )
    )
    event = Event(new_id("evt"), "transcript.completed", job_id, new_id("tr"), "generic", {}, time.time(), b"{}")
    await store.finish_job(
        Finish(
            cb.id,
            job_id,
            "completed",
            None,
            event.transcript_id,
            msgspec.json.encode({}),
            event,
            [subscription_id] if subscription_id else [],
        )  # fmt: skip
    )
    return job_id


async def test_prune_deletes_finished_work_and_keeps_pending_deliveries(database_url: str) -> None:
    async with open_store(database_url) as store:
        sub = await store.create_subscription(
            new_id("sub"), url="https://example.com/h", secret="whsec_AAAA", event_types=[], filter={}, description=None
        )
        done = await _finished_job(store, subscription_id=None)
        waiting = await _finished_job(store, subscription_id=sub.id)  # its delivery is still pending
        fresh_cutoff = time.time() - 3600
        assert (await store.prune(fresh_cutoff))["jobs"] == 0, "nothing is older than an hour"
        counts = await store.prune(time.time() + 1)
        assert counts["jobs"] == 1
        assert counts["events"] == 1
        assert counts["callbacks"] == 2, "processed callbacks go too, also those of jobs that stay"
        assert await store.get_job(done) is None
        assert await store.get_job(waiting) is not None
        assert len((await store.list_deliveries(status="pending")).items) == 1


async def _callback(store, key: str, received_at: float, *, processed: bool) -> str:
    """A callback received at `received_at` (its id made from that time, as the endpoint makes it)."""
    result = await store.ingest(
        NewCallback(
            new_id("cb", received_at), "generic", key, None, None, None, "POST", {}, {}, b"{}", received_at
        )  # fmt: skip
    )
    if processed:
        await store.settle_callback(result.id, CB_DONE)
    return result.id


async def test_prune_deletes_processed_callbacks_by_age_in_batches(database_url: str, monkeypatch) -> None:
    """Callbacks go by age alone, a batch at a time: processed ones received before the cutoff,
    however many batches they fill; pending ones and newer ones stay."""
    monkeypatch.setattr(storage.prune, "BATCH", 2)
    now = time.time()
    async with open_store(database_url) as store:
        old = [await _callback(store, f"old-{i}", now - 7200 + i, processed=True) for i in range(5)]
        waiting = await _callback(store, "old-pending", now - 7200, processed=False)
        newer = await _callback(store, "newer", now - 60, processed=True)
        at_cutoff = await _callback(store, "at-cutoff", now - 3600, processed=True)
        counts = await store.prune(now - 3600)
        assert counts["callbacks"] == len(old), "five over three batches of two; none at or after the cutoff"
        assert [await store.get_callback(cid) for cid in old] == [None] * len(old)
        for kept in (waiting, newer, at_cutoff):
            assert await store.get_callback(kept) is not None
        assert (await store.prune(now - 3600))["callbacks"] == 0
        assert (await store.prune(now))["callbacks"] == 2, "the pending one stays, whatever its age"
        assert await store.get_callback(waiting) is not None


async def test_a_pruned_jobs_late_callback_goes_by_its_own_age(database_url: str) -> None:
    """A provider's retry received after the cutoff outlives its pruned job, until it is old enough."""
    async with open_store(database_url) as store:
        job_id = await _finished_job(store, subscription_id=None)
        cutoff = time.time() + 0.01
        late = await _callback(store, f"k-{job_id}-retry", cutoff + 1, processed=True)
        counts = await store.prune(cutoff)
        assert (counts["jobs"], counts["callbacks"]) == (1, 1)
        assert await store.get_job(job_id) is None
        assert await store.get_callback(late) is not None
        assert (await store.prune(cutoff + 2))["callbacks"] == 1
        assert await store.get_callback(late) is None
