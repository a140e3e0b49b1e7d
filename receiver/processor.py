"""The processor: stored callbacks → normalized transcripts → one event per job.

It claims pending callbacks in arrival order with a lease, asks the provider's adapter to
resolve each (fetching the full result when the callback is thin), and writes transcript, event
and deliveries in one transaction (`Fanout.finish`, which hands the deliveries to the delivery
worker of this process). Every step is idempotent: a job's event is unique, so a callback
processed twice (after a crash, or a provider's retry that got past dedupe) never makes a
second event. A provider that is down leaves the callback stored; it is retried
with backoff until it succeeds.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import msgspec
import structlog

from receiver.exceptions import ProviderError, UnusableBodyError
from receiver.model import Transcript, iso
from receiver.providers.base import JobView, StoredCallback
from receiver.service import Service
from routes.fanout import Fanout
from storage.ids import new_id
from storage.records import CB_FAILED, CB_IGNORED, JOB_COMPLETED, JOB_FAILED, Callback, Event, Finish, Job

log = structlog.get_logger("callboard.processor")

MAX_BACKOFF = 600.0
GIVE_UP_AFTER = 3 * 86400.0  # a callback whose provider stays unreachable this long is marked failed


def backoff(attempts: int, rng: random.Random, base_delay: float = 2.0) -> float:
    base = min(MAX_BACKOFF, base_delay * 2.0 ** max(0, attempts - 1))
    return base * rng.uniform(0.8, 1.2)


def job_view(job: Job) -> JobView:
    return JobView(job.id, job.provider, job.provider_job_id, job.options, job.metadata, job.created_at)


def build_finish(
    service_fanout: Fanout, job: Job, transcript: Transcript, callback_id: str | None, now: float
) -> Finish:
    """The transcript object, its event envelope and the matching subscriptions, ready to write."""
    transcript.id = new_id("tr", now)
    transcript.job_id = job.id
    transcript.created = iso(job.created_at)
    transcript.completed_at = transcript.completed_at or iso(now)
    transcript.metadata = {**transcript.metadata, **job.metadata}
    if transcript.provider_job_id == "" and job.provider_job_id:
        transcript.provider_job_id = job.provider_job_id
    event_type = "transcript.completed" if transcript.status == "completed" else "transcript.failed"
    event_id = new_id("evt", now)
    payload = msgspec.json.encode({"type": event_type, "timestamp": iso(now), "data": transcript})
    event = Event(
        id=event_id,
        type=event_type,
        job_id=job.id,
        transcript_id=transcript.id,
        provider=job.provider,
        metadata=dict(transcript.metadata),
        created_at=now,
        payload=payload,
    )
    return Finish(
        callback_id=callback_id,
        job_id=job.id,
        job_status=JOB_COMPLETED if transcript.status == "completed" else JOB_FAILED,
        error=msgspec.to_builtins(transcript.error) if transcript.error else None,
        transcript_id=transcript.id,
        transcript_body=msgspec.json.encode(transcript),
        event=event,
        subscription_ids=service_fanout.matching(event_type, job.provider, transcript.metadata),
    )


class Processor:
    def __init__(
        self,
        service: Service,
        fanout: Fanout,
        *,
        batch: int = 64,
        concurrency: int = 16,
        poll_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.fanout = fanout
        self.batch = batch
        self.poll_interval = poll_interval
        self.clock = clock
        self._limit = asyncio.Semaphore(concurrency)
        self._wakeup = asyncio.Event()
        self._rng = random.Random()

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Cleared before claiming, not before idling: a wake-up that arrives while a batch is
            # processed (a new callback) must not be lost.
            self._wakeup.clear()
            try:
                worked = await self.run_once()
            except Exception as exc:  # the database went away: keep the loop alive, try again
                log.warning("processor.error", error=f"{type(exc).__name__}: {exc}")
                worked = 0
            if worked >= self.batch:
                continue  # a full batch: more may be due
            # less than a batch: nothing else was due when it was claimed, so wait for a wake-up
            # (returns at once if one came meanwhile) rather than claim again for nothing
            waiters: list[asyncio.Future[object]] = [
                asyncio.ensure_future(self._wakeup.wait()),
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(self.service.store.db.wait_for_work("callbacks", self.poll_interval)),
            ]
            _, pending = await asyncio.wait(waiters, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED)
            for w in pending:
                w.cancel()

    async def run_once(self) -> int:
        """Process one batch of due callbacks; return how many were taken."""
        lease = self.service.settings.processing_lease
        # the jobs the callbacks name come with the claim, rather than a query each
        batch = await self.service.store.claim_callback_batch(now=self.clock(), lease=lease, limit=self.batch)
        claimed, jobs = batch.callbacks, batch.jobs
        if not claimed:
            return 0
        await self.fanout.refresh(batch.subscriptions_version)
        # callbacks of one job in arrival order; different jobs concurrently
        by_job: dict[str, list[Callback]] = {}
        for cb in claimed:
            by_job.setdefault(cb.job_id or cb.provider_job_id or cb.job_hint or cb.id, []).append(cb)
        await asyncio.gather(*(self._process_in_order(cbs, jobs) for cbs in by_job.values()))
        return len(claimed)

    async def _process_in_order(self, callbacks: list[Callback], jobs: dict[str, Job]) -> None:
        async with self._limit:
            for n, cb in enumerate(callbacks):
                # a later callback of the job reads it afresh: the earlier one may have changed it
                await self.process(cb, jobs.get(cb.job_id) if n == 0 and cb.job_id else None)

    async def process(self, cb: Callback, job: Job | None = None) -> None:
        """Process one claimed callback; `job` is its job as read with the claim, when it was."""
        store, started = self.service.store, time.perf_counter()
        adapter = self.service.adapter(cb.provider)
        outcome = "done"
        try:
            job = job or await self._job_for(cb)
            if job is None:
                await store.settle_callback(cb.id, CB_IGNORED, error="no job matches this callback")
                outcome = "ignored"
                return
            stored = StoredCallback(
                cb.id, cb.provider, job.id, cb.provider_job_id, cb.method, cb.headers, cb.query, cb.body
            )
            transcript = await adapter.resolve(stored, job_view(job))
            if transcript is None:
                await store.settle_callback(cb.id, CB_IGNORED)
                outcome = "ignored"
                return
            created = await self.fanout.finish(build_finish(self.fanout, job, transcript, cb.id, self.clock()))
            outcome = "finished" if created else "already_finished"
        except ProviderError as exc:
            outcome = "retry"
            await self._retry(cb, f"{type(exc).__name__}: {exc.message}")
        except UnusableBodyError as exc:
            outcome = "failed"
            await store.settle_callback(cb.id, CB_FAILED, error=exc.message)
        except Exception as exc:  # a bug or an unexpected shape: keep the callback, say why, move on
            outcome = "failed"
            log.exception("callback.process_error", callback=cb.id, provider=cb.provider)
            await store.settle_callback(cb.id, CB_FAILED, error=f"{type(exc).__name__}: {exc}")
        finally:
            log.info(
                "callback.processed",
                callback=cb.id,
                provider=cb.provider,
                job=cb.job_id,
                outcome=outcome,
                attempt=cb.attempts,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
            )

    async def _retry(self, cb: Callback, error: str) -> None:
        now = self.clock()
        if now - cb.received_at > GIVE_UP_AFTER:
            await self.service.store.settle_callback(
                cb.id, CB_FAILED, error=f"gave up after {cb.attempts} attempts: {error}"
            )
            return
        await self.service.store.retry_callback(
            cb.id,
            error=error,
            next_attempt_at=now + backoff(cb.attempts, self._rng, self.service.settings.fetch_retry_base),
        )

    async def _job_for(self, cb: Callback) -> Job | None:
        store = self.service.store
        if cb.job_id:
            return await store.get_job(cb.job_id)
        if cb.provider_job_id:
            job = await store.find_job(cb.provider, cb.provider_job_id)
            if job is not None:
                return job
        if cb.job_hint:
            job = await store.get_job(cb.job_hint)
            if job is not None and job.provider == cb.provider:
                return job
        if cb.provider_job_id and self.service.adapter(cb.provider).adopts_unknown_jobs:
            job = await store.adopt_job(
                new_id("job"),
                cb.provider,
                cb.provider_job_id,
                reconcile_at=self.clock() + self.service.settings.reconcile_after,
            )
            await store.attach_job(cb.id, job.id)
            return job
        return None
