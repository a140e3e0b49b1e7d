"""The reconciler: asks providers about jobs whose terminal callback never came.

Lost callbacks are the most common real-world failure (short provider retry windows, outages on
our side). A job still `submitted` `CALLBOARD_RECONCILE_AFTER` seconds after submission is polled
at the provider, with bounded backoff, and finishes through the same normalization path as a
callback. Where a provider cannot be polled (deepgram), the job fails with `callback_timeout`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from receiver.exceptions import ProviderError
from receiver.model import failed
from receiver.processor import build_finish, job_view
from receiver.providers.base import PollUnsupportedError
from receiver.service import Service
from routes.fanout import Fanout
from storage.records import Job

log = structlog.get_logger("callboard.reconciler")

MAX_INTERVAL = 6 * 3600.0  # polls back off to at most every 6 hours
LOOP_INTERVAL = 5.0  # how often due jobs are looked for; never longer than CALLBOARD_RECONCILE_AFTER
MIN_LOOP_INTERVAL = 0.2
GIVE_UP_AFTER = 7 * 86400.0  # a job the provider never finishes is failed after a week


class Reconciler:
    def __init__(
        self,
        service: Service,
        fanout: Fanout,
        *,
        interval: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.fanout = fanout
        if interval is None:  # a short CALLBOARD_RECONCILE_AFTER is not stretched by a long loop
            interval = max(MIN_LOOP_INTERVAL, min(LOOP_INTERVAL, service.settings.reconcile_after))
        self.interval = interval
        self.clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception as exc:
                log.warning("reconciler.error", error=f"{type(exc).__name__}: {exc}")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            except TimeoutError:
                pass

    async def run_once(self) -> int:
        jobs = await self.service.store.jobs_to_reconcile(self.clock())
        if jobs:
            await self.fanout.refresh()
        for job in jobs:
            await self.reconcile(job)
        return len(jobs)

    def _next(self, job: Job, now: float) -> float:
        wait = min(
            MAX_INTERVAL, self.service.settings.reconcile_after * 2.0 ** min(job.reconcile_attempts, 16)
        )
        return now + max(wait, 1.0)

    async def reconcile(self, job: Job) -> None:
        store, now = self.service.store, self.clock()
        adapter = self.service.adapter(job.provider)
        try:
            if job.provider_job_id is None:
                raise ProviderError(job.provider, "the provider never returned a job id")
            transcript = await adapter.poll(job_view(job))
        except PollUnsupportedError:
            transcript = failed(
                job.provider,
                job.provider_job_id or "",
                "callback_timeout",
                f"no callback arrived within {self.service.settings.reconcile_after:g} s and {job.provider} "
                "cannot be polled for the result",
            )
        except ProviderError as exc:
            log.info("reconcile.poll_failed", job=job.id, provider=job.provider, error=exc.message)
            transcript = None
        if transcript is None:
            if now - job.created_at > GIVE_UP_AFTER:
                transcript = failed(
                    job.provider,
                    job.provider_job_id or "",
                    "callback_timeout",
                    "the provider never finished the job",
                )
            else:
                await store.reschedule_reconcile(job.id, self._next(job, now))
                return
        created = await self.fanout.finish(build_finish(self.fanout, job, transcript, None, now))
        log.info(
            "reconcile.finished", job=job.id, provider=job.provider, status=transcript.status, created=created
        )
