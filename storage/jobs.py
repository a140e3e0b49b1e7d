"""Jobs: what was submitted to which provider, and how it ended."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from storage import _rows
from storage._base import StoreBase
from storage.backend import placeholders
from storage.records import JOB_FAILED, JOB_SUBMITTED, JOB_SUBMITTING, Job, JobFilter, Page


class JobsStore(StoreBase):
    async def create_job(
        self,
        job_id: str,
        provider: str,
        *,
        audio_url: str | None,
        recording_id: str | None,
        options: Mapping[str, Any],
        metadata: Mapping[str, Any],
        now: float | None = None,
    ) -> Job:
        now = time.time() if now is None else now
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                "INSERT INTO jobs (id, provider, status, audio_url, recording_id, options, metadata,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                job_id,
                provider,
                JOB_SUBMITTING,
                audio_url,
                recording_id,
                _rows.dumps(options),
                _rows.dumps(metadata),
                now,
                now,
            )
        return _rows.job(rows[0])

    async def mark_submitted(self, job_id: str, provider_job_id: str, *, reconcile_at: float) -> Job | None:
        """Record the provider's id. A callback may already have finished the job: its status is kept."""
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                "UPDATE jobs SET provider_job_id = ?, updated_at = ?,"
                " status = CASE WHEN status = ? THEN ? ELSE status END,"
                " reconcile_at = CASE WHEN status = ? THEN ? ELSE reconcile_at END"
                " WHERE id = ? RETURNING *",
                provider_job_id,
                time.time(),
                JOB_SUBMITTING,
                JOB_SUBMITTED,
                JOB_SUBMITTING,
                reconcile_at,
                job_id,
            )
        return _rows.job(rows[0]) if rows else None

    async def mark_submit_failed(self, job_id: str, error: Mapping[str, Any]) -> None:
        """The provider refused the job: it is failed, with no event (the submitter was told directly)."""
        now = time.time()
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE jobs SET status = ?, error = ?, updated_at = ?, completed_at = ?, reconcile_at = NULL"
                " WHERE id = ? AND status = ?",
                JOB_FAILED,
                _rows.dumps(error),
                now,
                now,
                job_id,
                JOB_SUBMITTING,
            )

    async def adopt_job(self, job_id: str, provider: str, provider_job_id: str, *, reconcile_at: float) -> Job:
        """A job for a provider job Callboard did not submit (recall workspace webhooks)."""
        now = time.time()
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO jobs (id, provider, provider_job_id, status, options, metadata, created_at,"
                " updated_at, reconcile_at) VALUES (?, ?, ?, ?, '{}', '{}', ?, ?, ?)"
                " ON CONFLICT (provider, provider_job_id) WHERE provider_job_id IS NOT NULL DO NOTHING",
                job_id,
                provider,
                provider_job_id,
                JOB_SUBMITTED,
                now,
                now,
                reconcile_at,
            )
            rows = await tx.fetch(
                "SELECT * FROM jobs WHERE provider = ? AND provider_job_id = ?", provider, provider_job_id
            )
        return _rows.job(rows[0])

    async def get_job(self, job_id: str) -> Job | None:
        async with self.db.read() as db:
            rows = await db.fetch("SELECT * FROM jobs WHERE id = ?", job_id)
        return _rows.job(rows[0]) if rows else None

    async def get_jobs(self, job_ids: list[str]) -> dict[str, Job]:
        """Several jobs in one query, by id (ids that match nothing are left out)."""
        if not job_ids:
            return {}
        async with self.db.read() as db:
            rows = await db.fetch(f"SELECT * FROM jobs WHERE id IN {placeholders(len(job_ids))}", *job_ids)
        return {r["id"]: _rows.job(r) for r in rows}

    async def find_job(self, provider: str, provider_job_id: str) -> Job | None:
        async with self.db.read() as db:
            rows = await db.fetch(
                "SELECT * FROM jobs WHERE provider = ? AND provider_job_id = ?", provider, provider_job_id
            )
        return _rows.job(rows[0]) if rows else None

    async def list_jobs(self, flt: JobFilter, *, cursor: str | None = None, limit: int = 50) -> Page[Job]:
        clause, args = _rows.where(
            {
                "provider = ?": flt.provider,
                "status = ?": flt.status,
                "created_at >= ?": flt.since,
                "created_at < ?": flt.until,
                "id < ?": cursor,
            }
        )
        async with self.db.read() as db:
            rows = await db.fetch(f"SELECT * FROM jobs{clause} ORDER BY id DESC LIMIT ?", *args, limit + 1)
        items = [_rows.job(r) for r in rows[:limit]]
        return Page(items, items[-1].id if len(rows) > limit else None)

    async def get_transcript(self, job_id: str) -> bytes | None:
        async with self.db.read() as db:
            rows = await db.fetch("SELECT body FROM transcripts WHERE job_id = ?", job_id)
        return bytes(rows[0]["body"]) if rows else None

    async def jobs_to_reconcile(self, now: float, limit: int = 100) -> list[Job]:
        async with self.db.read() as db:
            rows = await db.fetch(
                "SELECT * FROM jobs WHERE reconcile_at IS NOT NULL AND reconcile_at <= ? AND status = ?"
                " ORDER BY reconcile_at LIMIT ?",
                now,
                JOB_SUBMITTED,
                limit,
            )
        return [_rows.job(r) for r in rows]

    async def reschedule_reconcile(self, job_id: str, reconcile_at: float | None) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE jobs SET reconcile_at = ?, reconcile_attempts = reconcile_attempts + 1 WHERE id = ?",
                reconcile_at,
                job_id,
            )
