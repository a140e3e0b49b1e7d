"""Retention: delete finished work older than a cutoff.

Only what is over is pruned: jobs that completed or failed (with their transcript, event,
deliveries and attempts) once none of their deliveries is still pending, and callbacks already
processed. Pending callbacks and deliveries are never touched, whatever their age.
"""

from __future__ import annotations

from storage._base import StoreBase

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
                rows = await tx.fetch(
                    f"DELETE FROM callbacks WHERE job_id IN ({marks}) AND status <> 'pending' RETURNING id", *jobs
                )
                counts["callbacks"] += len(rows)
                rows = await tx.fetch(f"DELETE FROM jobs WHERE id IN ({marks}) RETURNING id", *jobs)
                counts["jobs"] += len(rows)
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                "DELETE FROM callbacks WHERE status <> 'pending' AND received_at < ? RETURNING id", before
            )
            counts["callbacks"] += len(rows)
        return counts
