"""Group commit on PostgreSQL: a batch is written on another connection while the one before it
still waits for its commit (`Backend.write_concurrency`), and every caller still gets its own
answer, in order."""

from __future__ import annotations

import asyncio

from storage.batching import GroupCommit
from storage.records import IngestResult, NewCallback
from storage.store import open_store
from tests.storage.test_hot_path_writes import callback, new_job


async def test_a_batch_is_written_while_the_one_before_it_is_still_being_committed(postgres_url: str) -> None:
    async with open_store(postgres_url) as store:
        assert store.db.write_concurrency == 2
        job_id = await new_job(store)
        held, release = asyncio.Event(), asyncio.Event()
        batches: list[list[str]] = []

        async def flush(batch: list[NewCallback]) -> list[IngestResult]:
            batches.append([c.dedupe_key for c in batch])
            if len(batches) == 1:  # the first batch waits, as for a slow WAL flush
                held.set()
                await release.wait()
            return await store.write_callbacks(batch)

        commit: GroupCommit[NewCallback, IngestResult] = GroupCommit(flush, concurrency=store.db.write_concurrency)
        a, b, c = (callback(job_id, key) for key in "abc")
        first = asyncio.ensure_future(commit.submit(a))
        await held.wait()
        second = await asyncio.wait_for(asyncio.gather(commit.submit(b), commit.submit(c)), timeout=10)
        assert [r.id for r in second] == [b.id, c.id]
        assert not first.done()
        release.set()
        assert (await first).id == a.id
        await commit.close()
        assert batches == [["a"], ["b", "c"]]
        assert {cb.id for cb in await store.claim_callbacks(now=2e9, lease=60, limit=10)} == {a.id, b.id, c.id}
