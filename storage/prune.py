"""Retention: delete finished work older than a cutoff.

Only what is over is pruned: jobs that completed or failed (with their transcript, event,
deliveries and attempts) once none of their deliveries is still pending, and callbacks already
processed. Pending callbacks and deliveries are never touched, whatever their age.

Callbacks go by age alone, not with their job: a job's callbacks came before it finished, so
those older than the cutoff go in the same run as the job, and a late retry of one (received after
the cutoff, answered as a duplicate) goes in a later run. There is no index on a callback's job
(every inbound callback would write to it for prune's sake); a callback's id carries the time it
was received, so the batches walk the primary key up to the cutoff and no further.
"""

from __future__ import annotations

from storage._base import StoreBase
from storage.ids import id_after

BATCH = 1000


class PruneStore(StoreBase):
    async def prune(self, before: float) -> dict[str, int]:
        counts = {"jobs": 0, "events": 0, "deliveries": 0, "attempts": 0, "callbacks": 0}
        while True:
            async with self.db.transaction() as tx:
                jobs = [
                    r["id"]
                    for r in await tx.fetch(
                        "SELECT id FROM jobs WHERE status IN ('completed', 'failed') AND updated_at < ? AND NOT EXISTS"
                        " (SELECT 1 FROM events e JOIN deliveries d ON d.event_id = e.id"
                        "  WHERE e.job_id = jobs.id AND d.status = 'pending') LIMIT ?",
                        before,
                        BATCH,
                    )
                ]
                if not jobs:
                    break
                marks = ", ".join("?" * len(jobs))
                events = [r["id"] for r in await tx.fetch(f"SELECT id FROM events WHERE job_id IN ({marks})", *jobs)]
                if events:
                    emarks = ", ".join("?" * len(events))
                    deliveries = f"SELECT id FROM deliveries WHERE event_id IN ({emarks})"
                    rows = await tx.fetch(
                        f"DELETE FROM attempts WHERE delivery_id IN ({deliveries}) RETURNING id", *events
                    )
                    counts["attempts"] += len(rows)
                    rows = await tx.fetch(f"DELETE FROM deliveries WHERE event_id IN ({emarks}) RETURNING id", *events)
                    counts["deliveries"] += len(rows)
                    rows = await tx.fetch(f"DELETE FROM events WHERE id IN ({emarks}) RETURNING id", *events)
                    counts["events"] += len(rows)
                await tx.execute(f"DELETE FROM transcripts WHERE job_id IN ({marks})", *jobs)
                rows = await tx.fetch(f"DELETE FROM jobs WHERE id IN ({marks}) RETURNING id", *jobs)
                counts["jobs"] += len(rows)
        counts["callbacks"] = await self._prune_callbacks(before)
        return counts

    async def _prune_callbacks(self, before: float) -> int:
        """Delete processed callbacks received before `before`, a batch at a time; how many."""
        below = id_after("cb", before)  # every callback received before `before` has an id below it
        deleted = 0
        while True:
            async with self.db.transaction() as tx:
                rows = await tx.fetch(
                    "DELETE FROM callbacks WHERE id IN (SELECT id FROM callbacks WHERE id < ? AND received_at < ?"
                    " AND status <> 'pending' ORDER BY id LIMIT ?) RETURNING id",
                    below,
                    before,
                    BATCH,
                )
            deleted += len(rows)
            if len(rows) < BATCH:
                return deleted
