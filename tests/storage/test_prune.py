"""Retention on both backends: finished work older than the cutoff goes, pending work stays."""

from __future__ import annotations

import time

import msgspec

from storage.ids import new_id
from storage.records import Event, Finish, NewCallback
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
