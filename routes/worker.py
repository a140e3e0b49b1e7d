"""The delivery worker: signed POSTs to subscribers, with retries, over one pooled aiohttp session.

It claims due deliveries (leased longer than the HTTP timeout), signs each event per Standard
Webhooks with every secret in force (two during a rotation), posts it, and records the attempt:
status code, latency, error, a bounded excerpt of the answer. 2xx succeeds; 410 disables the
subscription; anything else is retried on the configured schedule until it is exhausted and
the delivery is `failed` (it stays replayable).

Isolation: each subscription has its own concurrency limit and claims are spread over
subscriptions, so a subscriber that hangs or refuses connections only ever holds its own slots.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import structlog

from routes import metrics
from routes.fanout import Fanout
from routes.retry import Outcome, RetryPolicy, classify
from routes.signing import secret_key, signature_header
from routes.ssrf import make_connector
from storage.ids import new_id
from storage.records import DLV_FAILED, DLV_PENDING, DLV_SUCCEEDED, Attempt, Delivery, Event, Subscription
from storage.store import Store

log = structlog.get_logger("callboard.delivery")

EXCERPT_BYTES = 1024
HEARTBEAT_KEY = "delivery_worker_heartbeat"
HEARTBEAT_INTERVAL = 5.0
USER_AGENT = "Callboard-Webhooks/1.0"
#: uvloop (libuv) timers have millisecond granularity and can fire a little early: a retry woken
#: before it is due would wait for the next poll instead
WAKE_MARGIN = 0.01


@dataclass(frozen=True)
class WorkerConfig:
    policy: RetryPolicy
    timeout: float = 15.0
    allow_private: bool = False
    disable_after: float = 5 * 86400.0
    per_subscription: int = 8
    max_in_flight: int = 256
    batch: int = 200
    poll_interval: float = 1.0
    #: how often subscriptions failing for `disable_after` are looked for and disabled
    health_interval: float = 60.0

    @property
    def lease(self) -> float:
        return self.timeout * 2 + 5.0


def signing_keys(sub: Subscription, now: float) -> list[bytes]:
    """The current secret, plus the previous one while its rotation grace period lasts."""
    keys = [secret_key(sub.secret)]
    if sub.previous_secret and (sub.previous_secret_expires_at or 0) > now:
        keys.append(secret_key(sub.previous_secret))
    return keys


def delivery_headers(event: Event, sub: Subscription, now: float) -> dict[str, str]:
    ts = int(now)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event.id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(signing_keys(sub, now), event.id, ts, event.payload),
    }


async def worker_alive(store: Store, now: float) -> bool:
    """Whether some delivery worker (in any process) has reported in recently."""
    beat = await store.get_meta(HEARTBEAT_KEY)
    return beat is not None and now - float(beat) < HEARTBEAT_INTERVAL * 3


class DeliveryWorker:
    def __init__(
        self, store: Store, fanout: Fanout, config: WorkerConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.fanout = fanout
        self.config = config
        self.clock = clock
        self._in_flight: dict[str, int] = {}
        self._global = asyncio.Semaphore(config.max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_health = 0.0
        self._next_heartbeat = 0.0
        self._heartbeat: str | None = None

    def _busy(self) -> list[str]:
        return [sid for sid, n in self._in_flight.items() if n >= self.config.per_subscription]

    async def run(self, stop: asyncio.Event) -> None:
        connector = make_connector(allow_private=self.config.allow_private, limit=self.config.max_in_flight)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session:
            try:
                while not stop.is_set():
                    # Cleared before claiming, not before idling: a wake-up that arrives while a
                    # claim runs (a new event, a retry falling due) must not be lost.
                    self.fanout.delivery_wakeup.clear()
                    try:
                        started = await self.run_once(session)
                    except Exception as exc:  # database trouble: keep going, the leases protect the work
                        log.warning("delivery.loop_error", error=f"{type(exc).__name__}: {exc}")
                        started = 0
                    if started:
                        await asyncio.sleep(0)
                        continue
                    await self._idle(stop)
                if self._tasks:
                    await asyncio.wait(self._tasks, timeout=self.config.timeout + 1)
            finally:
                await self._sign_off()

    async def _sign_off(self) -> None:
        """Withdraw this worker's heartbeat, so `callboard replay` started right after a clean stop
        delivers by itself instead of waiting for a worker that is gone."""
        if self._heartbeat is None:
            return
        try:
            if await self.store.get_meta(HEARTBEAT_KEY) == self._heartbeat:
                await self.store.meta_set(HEARTBEAT_KEY, "0")
        except Exception as exc:
            log.warning("delivery.sign_off_failed", error=f"{type(exc).__name__}: {exc}")

    async def _idle(self, stop: asyncio.Event) -> None:
        waiters = [
            asyncio.ensure_future(self.fanout.delivery_wakeup.wait()),
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self.store.db.wait_for_work("deliveries", self.config.poll_interval)),
        ]
        _, pending = await asyncio.wait(
            waiters, timeout=self.config.poll_interval, return_when=asyncio.FIRST_COMPLETED
        )
        for w in pending:
            w.cancel()

    def _wake_at(self, when: float) -> None:
        """Wake the loop when a retry falls due sooner than the next poll would notice it."""
        delay = max(0.0, when - self.clock()) + WAKE_MARGIN
        if delay < self.config.poll_interval:
            asyncio.get_running_loop().call_later(delay, self.fanout.wake)

    async def run_once(self, session: aiohttp.ClientSession) -> int:
        """Claim a batch of due deliveries and start sending them; return how many were started."""
        now = self.clock()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_INTERVAL
            self._heartbeat = repr(now)
            await self.store.meta_set(HEARTBEAT_KEY, self._heartbeat)
        if now >= self._next_health:
            self._next_health = now + self.config.health_interval
            window = self.config.disable_after
            for sid in await self.store.disable_failing_subscriptions(now=now, window=window):
                log.warning("subscription.disabled", subscription=sid, reason="failing")
        room = self.config.max_in_flight - sum(self._in_flight.values())
        if room <= 0:
            return 0
        claimed = await self.store.claim_deliveries(
            now=now,
            lease=self.config.lease,
            limit=min(room, self.config.batch),
            per_subscription=self.config.per_subscription,
            exclude=self._busy(),
        )
        if not claimed:
            return 0
        events = await self.store.get_events(list({d.event_id for d in claimed}))
        subs = {s.id: s for s in await self.store.enabled_subscriptions()}
        started = 0
        for delivery in claimed:
            sid = delivery.subscription_id
            if self._in_flight.get(sid, 0) >= self.config.per_subscription:
                # The claim caps each endpoint per batch, not counting what is already in flight:
                # hand the surplus back rather than exceed the endpoint's concurrency limit.
                await self.store.release_delivery(delivery.id)
                continue
            self._in_flight[sid] = self._in_flight.get(sid, 0) + 1
            task = asyncio.create_task(self._deliver(session, delivery, events.get(delivery.event_id), subs))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def _deliver(
        self,
        session: aiohttp.ClientSession,
        delivery: Delivery,
        event: Event | None,
        subs: dict[str, Subscription],
    ) -> None:
        try:
            sub = subs.get(delivery.subscription_id)
            if event is None or sub is None:  # deleted or disabled meanwhile: leave it for later/never
                await self.store.release_delivery(delivery.id)
                return
            async with self._global:
                await self.attempt(session, delivery, event, sub)
        except Exception as exc:
            log.warning("delivery.error", delivery=delivery.id, error=f"{type(exc).__name__}: {exc}")
        finally:
            sid = delivery.subscription_id
            was_full = self._in_flight[sid] >= self.config.per_subscription or (
                sum(self._in_flight.values()) >= self.config.max_in_flight
            )
            self._in_flight[sid] -= 1
            if not self._in_flight[sid]:
                del self._in_flight[sid]
            if was_full:  # the loop skipped this endpoint (or everything) while full: claim again now
                self.fanout.wake()

    async def attempt(
        self,
        session: aiohttp.ClientSession,
        delivery: Delivery,
        event: Event,
        sub: Subscription,
        trigger: str = "worker",
    ) -> str:
        """One HTTP attempt and its record; returns the delivery's new status."""
        now = self.clock()
        headers = delivery_headers(event, sub, now)
        status_code: int | None = None
        error: str | None = None
        excerpt: str | None = None
        retry_after: str | None = None
        started = time.perf_counter()
        try:
            post = session.post(sub.url, data=event.payload, headers=headers, allow_redirects=False)
            async with post as resp:
                status_code = resp.status
                retry_after = resp.headers.get("retry-after")
                excerpt = (await resp.content.read(EXCERPT_BYTES)).decode("utf-8", "replace") or None
        except TimeoutError:
            error = f"timed out after {self.config.timeout:g} s"
        except aiohttp.ClientConnectorError as exc:
            error = f"connection failed: {exc.os_error or exc}"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        outcome = classify(status_code, error)
        if status_code is not None and 300 <= status_code < 400 and error is None:
            error = f"redirect ({status_code}) not followed"
        elif status_code is not None and outcome is not Outcome.SUCCESS and error is None:
            error = f"HTTP {status_code}"
        disable_reason = None
        next_at: float | None = None
        if outcome is Outcome.SUCCESS:
            status = DLV_SUCCEEDED
        elif outcome is Outcome.GONE:
            status, disable_reason = DLV_FAILED, "the endpoint answered 410 Gone"
        else:
            delay = self.config.policy.next_delay(
                delivery.schedule_index + 1, status=status_code, retry_after=retry_after
            )
            status = DLV_FAILED if delay is None else DLV_PENDING
            next_at = None if delay is None else now + delay
        attempt = Attempt(
            id=new_id("att", now),
            delivery_id=delivery.id,
            attempted_at=now,
            status_code=status_code,
            latency_ms=latency_ms,
            error=error,
            response_excerpt=excerpt,
            trigger=trigger,
        )
        status = await self.store.record_attempt(
            delivery, attempt, status=status, next_attempt_at=next_at, disable_reason=disable_reason
        )
        if next_at is not None and status == DLV_PENDING:
            self._wake_at(next_at)
        metrics.DELIVERY_ATTEMPTS.labels(status).inc()
        metrics.DELIVERY_LATENCY.observe(latency_ms / 1000)
        log.info(
            "delivery.attempt",
            delivery=delivery.id,
            event_id=event.id,
            subscription=sub.id,
            status_code=status_code,
            outcome=status,
            latency_ms=latency_ms,
            error=error,
        )
        return status
