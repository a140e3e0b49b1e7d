"""Concurrent `finish_job` calls share one transaction (a group commit), on both backends: one
statement on PostgreSQL, each statement once for the whole batch on SQLite.

The batch must write what finishing the jobs one at a time writes, answer each caller for its
own job, take the one-at-a-time path for a batch that names a job twice, and let a finish that
cannot be written fail by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import msgspec

from storage.records import CB_DONE, CB_IGNORED, DLV_PENDING, JOB_COMPLETED, JOB_FAILED, Delivery, Finish, Finished
from storage.store import Store, open_store
from tests.storage.test_hot_path_writes import NOW, callback, finish, new_job, subscription


async def _jobs_with_callbacks(store: Store, n: int) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        job_id = await new_job(store)
        cb = callback(job_id, f"k{i}")
        await store.write_callbacks([cb])
        out.append((job_id, cb.id))
    await store.claim_callbacks(now=NOW + 1, lease=60, limit=100)
    return out


async def test_concurrent_finishes_write_what_one_at_a_time_writes(database_url: str) -> None:
    async with open_store(database_url) as store:
        enabled, disabled = await subscription(store), await subscription(store, enabled=False)
        jobs = await _jobs_with_callbacks(store, 4)
        already = await new_job(store)
        assert await store.finish_job(finish(already, None, [enabled]))
        finishes = [
            finish(jobs[0][0], jobs[0][1], [enabled, disabled]),
            finish(jobs[1][0], jobs[1][1], [], failed=True),
            finish(jobs[2][0], None, [enabled]),
            finish(already, jobs[3][1], [enabled]),  # finished before: only the callback changes
        ]
        answers = await asyncio.gather(*(store.finish_job(f) for f in finishes))
        assert list(answers) == [True, True, True, False]

        for f, status in zip(finishes[:3], (JOB_COMPLETED, JOB_FAILED, JOB_COMPLETED), strict=True):
            job = await store.get_job(f.job_id)
            assert job is not None and job.status == status and job.reconcile_at is None
            assert job.error == (dict(f.error) if f.error else None)
            assert await store.get_transcript(f.job_id) == f.transcript_body
            assert await store.get_event(f.event.id) == f.event
        deliveries = await store.deliveries_for_events([f.event.id for f in finishes])
        assert sorted((d.event_id, d.subscription_id, d.status) for d in deliveries) == sorted(
            [(finishes[0].event.id, enabled, DLV_PENDING), (finishes[2].event.id, enabled, DLV_PENDING)]
        )
        assert await store.get_event(finishes[3].event.id) is None
        done, ignored = await store.get_callback(jobs[0][1]), await store.get_callback(jobs[3][1])
        assert done is not None and done.status == CB_DONE and done.last_error is None
        assert ignored is not None and ignored.status == CB_IGNORED
        assert ignored.last_error == "the job had already finished"


async def test_a_batch_naming_a_job_twice_finishes_it_once(database_url: str) -> None:
    async with open_store(database_url) as store:
        sub = await subscription(store)
        [(job_id, first_cb)] = await _jobs_with_callbacks(store, 1)
        first, second = finish(job_id, first_cb, [sub]), finish(job_id, None, [sub])
        answers = await store.write_finishes([first, second])
        assert [a.created if isinstance(a, Finished) else a for a in answers] == [True, False]
        assert len(await store.deliveries_for_events([first.event.id, second.event.id])) == 1


async def test_a_finish_that_cannot_be_written_fails_alone(database_url: str) -> None:
    async with open_store(database_url) as store:
        sub = await subscription(store)
        jobs = await _jobs_with_callbacks(store, 3)
        finishes: list[Finish] = [finish(job_id, cb_id, [sub]) for job_id, cb_id in jobs]
        taken = msgspec.structs.replace(finishes[1].event, id=finishes[0].event.id)  # an event id already used
        finishes[1] = msgspec.structs.replace(finishes[1], event=taken)
        answers = await store.write_finishes(finishes)
        assert isinstance(answers[0], Finished) and answers[0].created
        assert isinstance(answers[2], Finished) and answers[2].created
        assert isinstance(answers[1], Exception)
        untouched = await store.get_job(jobs[1][0])
        assert untouched is not None and untouched.status != JOB_COMPLETED
        assert await store.get_transcript(jobs[1][0]) is None


async def test_a_finish_with_a_lease_writes_its_deliveries_leased_and_returns_them(database_url: str) -> None:
    async with open_store(database_url) as store:
        enabled, disabled = await subscription(store), await subscription(store, enabled=False)
        (job_a, cb_a), (job_b, cb_b) = await _jobs_with_callbacks(store, 2)
        lease_until = time.time() + 60
        leased = msgspec.structs.replace(finish(job_a, cb_a, [enabled, disabled]), lease_until=lease_until)
        plain = finish(job_b, cb_b, [enabled])
        results = await asyncio.gather(store.finish(leased), store.finish(plain))  # one batch

        assert [r.created for r in results] == [True, True]
        [(delivery, sub)] = results[0].leased  # the disabled subscription got no delivery
        assert (delivery.event_id, delivery.subscription_id, delivery.status) == (leased.event.id, enabled, DLV_PENDING)
        assert delivery.attempts == 0
        assert sub == await store.get_subscription(enabled)
        assert results[1].leased == []
        stored = await store.deliveries_for_events([leased.event.id])
        assert [d.id for d in stored] == [delivery.id]

        def claim(now: float) -> Awaitable[list[Delivery]]:
            return store.claim_deliveries(now=now, lease=600, limit=10, per_subscription=10)

        # the leased delivery is not for another worker to claim until its lease runs out
        assert [d.event_id for d in await claim(time.time())] == [plain.event.id]
        assert [d.id for d in await claim(lease_until + 1)] == [delivery.id]


async def test_a_finish_for_a_job_already_finished_leases_nothing(database_url: str) -> None:
    async with open_store(database_url) as store:
        sub = await subscription(store)
        [(job_id, cb_id)] = await _jobs_with_callbacks(store, 1)
        assert await store.finish_job(finish(job_id, None, [sub]))
        again = await store.finish(msgspec.structs.replace(finish(job_id, cb_id, [sub]), lease_until=time.time() + 60))
        assert again == Finished(created=False, leased=[])
