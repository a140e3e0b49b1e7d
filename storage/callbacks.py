"""The inbox: raw callbacks stored before they are acknowledged, then processed exactly once.

`ingest()` goes through group commit. A provider's retry of a callback (same provider and dedupe
key) is not stored twice; a callback for a job that does not exist is refused in the same batch.
Processing claims rows with a lease, so a process killed mid-way leaves nothing stuck: the lease
runs out and another pass takes the row again.
"""

from __future__ import annotations

import time
from typing import Any

from storage import _rows
from storage._base import StoreBase
from storage.backend import Executor, placeholders
from storage.records import (
    CB_DONE,
    CB_FAILED,
    CB_IGNORED,
    CB_PENDING,
    DLV_PENDING,
    Callback,
    Finish,
    IngestResult,
    NewCallback,
)

_INSERT = (
    "INSERT INTO callbacks (id, provider, dedupe_key, job_id, provider_job_id, job_hint, method, headers,"
    " query, body, received_at, status, attempts, next_attempt_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)"
    " ON CONFLICT (provider, dedupe_key) DO NOTHING"
)


def _insert_row(c: NewCallback) -> tuple[object, ...]:
    return (
        c.id,
        c.provider,
        c.dedupe_key,
        c.job_id,
        c.provider_job_id,
        c.job_hint,
        c.method,
        _rows.dumps(c.headers),
        _rows.dumps(c.query),
        c.body,
        c.received_at,
        CB_PENDING,
        c.received_at,
    )


class CallbacksStore(StoreBase):
    async def write_callbacks(self, batch: list[NewCallback]) -> list[IngestResult]:
        """Store a batch in one transaction (the group-commit flush). Results are in batch order."""
        async with self.db.transaction() as tx:
            job_ids = sorted({c.job_id for c in batch if c.job_id})
            known = set()
            if job_ids:
                known = {r["id"] for r in await tx.fetch(f"SELECT id FROM jobs WHERE id IN {placeholders(len(job_ids))}", *job_ids)}
            accepted = [c for c in batch if c.job_id is None or c.job_id in known]
            if accepted:
                await tx.executemany(_INSERT, [_insert_row(c) for c in accepted])
            ids = [c.id for c in accepted]
            stored = set()
            if ids:
                stored = {r["id"] for r in await tx.fetch(f"SELECT id FROM callbacks WHERE id IN {placeholders(len(ids))}", *ids)}
            results = [
                IngestResult(c.id)
                if c.id in stored
                else (IngestResult(c.id, unknown_job=True) if c.job_id and c.job_id not in known else await _explain(tx, c))
                for c in batch
            ]
            if stored:
                await self.db.notify(tx, "callbacks")
        return results

    async def claim_callbacks(self, *, now: float, lease: float, limit: int) -> list[Callback]:
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                "UPDATE callbacks SET lease_until = ?, attempts = attempts + 1 WHERE id IN ("
                " SELECT id FROM callbacks WHERE status = ? AND next_attempt_at <= ?"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at, id LIMIT ?"
                f"{self.db.skip_locked}) RETURNING *",
                now + lease,
                CB_PENDING,
                now,
                now,
                limit,
            )
        return sorted((_rows.callback(r) for r in rows), key=lambda c: (c.next_attempt_at, c.id))

    async def retry_callback(self, callback_id: str, *, error: str, next_attempt_at: float) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE callbacks SET last_error = ?, next_attempt_at = ?, lease_until = NULL WHERE id = ?",
                error,
                next_attempt_at,
                callback_id,
            )

    async def settle_callback(self, callback_id: str, status: str, *, error: str | None = None) -> None:
        """Mark a callback `ignored` (acknowledged, nothing to do) or `failed` (cannot be processed)."""
        assert status in (CB_IGNORED, CB_FAILED, CB_DONE)
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE callbacks SET status = ?, last_error = ?, processed_at = ?, lease_until = NULL WHERE id = ?",
                status,
                error,
                time.time(),
                callback_id,
            )

    async def attach_job(self, callback_id: str, job_id: str) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE callbacks SET job_id = ? WHERE id = ?", job_id, callback_id)

    async def get_callback(self, callback_id: str) -> Callback | None:
        async with self.db.read() as db:
            rows = await db.fetch("SELECT * FROM callbacks WHERE id = ?", callback_id)
        return _rows.callback(rows[0]) if rows else None

    async def count_callbacks(self, status: str | None = None) -> int:
        clause, args = _rows.where({"status = ?": status})
        async with self.db.read() as db:
            rows = await db.fetch(f"SELECT COUNT(*) AS n FROM callbacks{clause}", *args)
        return int(rows[0]["n"])

    async def finish_job(self, finish: Finish) -> bool:
        """Transcript, event, one delivery per matching subscription, job state and the callback, at once.

        Returns False, writing nothing but the callback's state, when the job already has its event.
        """
        now = time.time()
        ev = finish.event
        async with self.db.transaction() as tx:
            inserted = await tx.fetch(
                "INSERT INTO transcripts (id, job_id, status, body, created_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (job_id) DO NOTHING RETURNING id",
                finish.transcript_id,
                finish.job_id,
                finish.job_status,
                finish.transcript_body,
                now,
            )
            if inserted:
                await tx.execute(
                    "INSERT INTO events (id, type, job_id, transcript_id, provider, metadata, created_at, payload)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    ev.id,
                    ev.type,
                    ev.job_id,
                    ev.transcript_id,
                    ev.provider,
                    _rows.dumps(ev.metadata),
                    ev.created_at,
                    ev.payload,
                )
                await insert_deliveries(tx, ev.id, finish.subscription_ids, now)
                await tx.execute(
                    "UPDATE jobs SET status = ?, error = ?, completed_at = ?, updated_at = ?, reconcile_at = NULL"
                    " WHERE id = ?",
                    finish.job_status,
                    _rows.dumps(finish.error) if finish.error is not None else None,
                    now,
                    now,
                    finish.job_id,
                )
            if finish.callback_id is not None:
                await tx.execute(
                    "UPDATE callbacks SET status = ?, processed_at = ?, lease_until = NULL, last_error = ?"
                    " WHERE id = ?",
                    CB_DONE if inserted else CB_IGNORED,
                    now,
                    None if inserted else "the job had already finished",
                    finish.callback_id,
                )
            if inserted and finish.subscription_ids:
                await self.db.notify(tx, "deliveries")
        return bool(inserted)


async def insert_deliveries(tx: Executor, event_id: str, subscription_ids: list[str], now: float) -> None:
    """One pending delivery per enabled subscription; an existing (event, subscription) pair is kept."""
    from storage.ids import new_id

    if not subscription_ids:
        return
    rows = await tx.fetch(
        f"SELECT id FROM subscriptions WHERE enabled = 1 AND id IN {placeholders(len(subscription_ids))}",
        *subscription_ids,
    )
    enabled = [r["id"] for r in rows]
    if not enabled:
        return
    await tx.executemany(
        "INSERT INTO deliveries (id, event_id, subscription_id, status, attempts, schedule_index,"
        " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, 0, 0, ?, ?, ?)"
        " ON CONFLICT (event_id, subscription_id) DO NOTHING",
        [(new_id("dlv", now), event_id, sid, DLV_PENDING, now, now, now) for sid in enabled],
    )


async def _explain(tx: Executor, c: NewCallback) -> IngestResult:
    """Why a callback of the batch was not inserted: a duplicate, or a token for an unknown job."""
    rows: list[Any] = await tx.fetch(
        "SELECT id FROM callbacks WHERE provider = ? AND dedupe_key = ?", c.provider, c.dedupe_key
    )
    if rows:
        return IngestResult(rows[0]["id"], duplicate=True)
    return IngestResult(c.id, unknown_job=True)
