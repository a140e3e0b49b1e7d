"""The delivery worker: signed POSTs to subscribers, with retries, over one pooled aiohttp session.

It claims due deliveries (leased longer than the HTTP timeout), signs each event per Standard
Webhooks with every secret in force (two during a rotation), posts it, and records the attempt:
status code, latency, error, a bounded excerpt of the answer. 2xx succeeds; 410 disables the
subscription; anything else is retried on the configured schedule until it is exhausted and
the delivery is `failed` (it stays replayable).

Isolation: each subscription has its own concurrency limit and claims are spread over
subscriptions, so a subscriber that hangs or refuses connections only ever holds its own slots.

Throughput: a claim is a write transaction (a commit) and costs more than a POST to a fast
endpoint, so the worker claims ahead: up to `PREFETCH` times an endpoint's concurrency limit at
once, queued per endpoint and started as its slots free (never more in flight than the limit).
A slot frees when the HTTP exchange ends, not once the attempt is recorded: recording shares
commits with other writes and is not a request to the endpoint. A queued delivery whose lease
would run out before its attempt could finish is handed back instead of being sent.

The processor of the same process does not leave new deliveries to a claim: while the worker
runs (and the endpoints have room in their windows), they are written already leased to it and
handed over with their event and subscription (`Sender`, `Fanout.finish`), queued like claimed
ones; a claim finds the rest, and everything after a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from routes import metrics
from routes.fanout import Fanout
from routes.retry import Outcome, RetryPolicy, classify
from routes.signing import secret_key, signature_header
from routes.ssrf import make_connector
from storage.ids import new_id
from storage.records import (
    DLV_FAILED,
    DLV_PENDING,
    DLV_SUCCEEDED,
    Attempt,
    Delivery,
    Event,
    Subscription,
    storable,
)
from storage.store import Store

log = structlog.get_logger("callboard.delivery")

EXCERPT_BYTES = 1024
HEARTBEAT_KEY = "delivery_worker_heartbeat"
HEARTBEAT_INTERVAL = 5.0
USER_AGENT = "Callboard-Webhooks/1.0"
#: uvloop (libuv) timers have millisecond granularity and can fire a little early: a retry woken
#: before it is due would wait for the next poll instead
WAKE_MARGIN = 0.01
#: deliveries claimed at once per endpoint, as a multiple of its concurrency limit
PREFETCH = 8
#: a queued delivery is started only if its attempt can end this long before its lease does
LEASE_MARGIN = 1.0


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
    #: write a debug line for every successful attempt (at `CALLBOARD_LOG_LEVEL=debug`); without
    #: it the line is not made at all, which saves the 1 µs a filtered line still costs
    log_successes: bool = False

    @property
    def lease(self) -> float:
        return self.timeout * 2 + 5.0


def signing_keys(sub: Subscription, now: float) -> list[bytes]:
    """The current secret, plus the previous one while its rotation grace period lasts."""
    keys = [secret_key(sub.secret)]
    if sub.previous_secret and (sub.previous_secret_expires_at or 0) > now:
        keys.append(secret_key(sub.previous_secret))
    return keys


def excerpt(body: bytes) -> str | None:
    """The start of an answer as text that every backend stores (`storable`)."""
    return storable(body.decode("utf-8", "replace")) or None


def delivery_headers(event: Event, sub: Subscription, now: float) -> dict[str, str]:
    ts = int(now)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event.id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(signing_keys(sub, now), event.id, ts, event.payload),
    }


@dataclass
class _Exchange:
    """What one HTTP attempt got: an answer, or an error; and how long it took."""

    status_code: int | None = None
    error: str | None = None
    excerpt: str | None = None
    retry_after: str | None = None
    latency_ms: float = 0.0


@dataclass(frozen=True)
class _Claimed:
    delivery: Delivery
    event: Event | None
    subscription: Subscription | None
    claimed_at: float


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
        self._in_flight: dict[str, int] = {}  # HTTP requests open, per subscription
        self._held: dict[str, int] = {}  # claimed and not finished (queued, in flight, recording)
        self._queued: dict[str, deque[_Claimed]] = {}  # claimed, waiting for a slot
        # the last claim took less than it asked for: nothing else was due, so the loop waits for
        # a wake-up (new events, a freed window, a retry falling due) instead of claiming again
        self._drained = False
        self._global = asyncio.Semaphore(config.max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_health = 0.0
        self._next_heartbeat = 0.0
        self._heartbeat: str | None = None
        self._session: aiohttp.ClientSession | None = None  # while running: deliveries are handed over

    @property
    def _window(self) -> int:
        return self.config.per_subscription * PREFETCH

    def _busy(self) -> list[str]:
        """Endpoints holding a full window already: left out of the next claim."""
        return [sid for sid, n in self._held.items() if n >= self._window]

    def _room(self) -> int:
        """Deliveries this worker may still take on, all endpoints together."""
        return self.config.max_in_flight * PREFETCH - sum(self._held.values())

    def lease_until(self, subscription_ids: list[str]) -> float | None:
        """`Sender`: deliveries to these endpoints written now are leased to this worker until
        then, if it is running and has room for them (None: leave them to a claim)."""
        if self._session is None or self._room() < len(subscription_ids):
            return None
        if any(self._held.get(sid, 0) >= self._window for sid in subscription_ids):
            return None
        return self.clock() + self.config.lease

    def take(self, event: Event, leased: list[tuple[Delivery, Subscription]], lease_until: float) -> None:
        """`Sender`: queue deliveries written leased to this worker, as a claim would have."""
        session = self._session
        if session is None:  # stopped since the lease was given: hand them back now
            for delivery, _ in leased:
                self._spawn(self._release(delivery.id))
            return
        claimed_at = lease_until - self.config.lease
        self._enqueue(session, [_Claimed(delivery, event, sub, claimed_at) for delivery, sub in leased])

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _release(self, delivery_id: str) -> None:
        try:
            await self.store.release_delivery(delivery_id)
        except Exception as exc:  # its lease runs out instead
            log.warning("delivery.release_failed", delivery=delivery_id, error=str(exc))

    async def run(self, stop: asyncio.Event) -> None:
        connector = make_connector(allow_private=self.config.allow_private, limit=self.config.max_in_flight)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        # No cookie jar: an endpoint's Set-Cookie is not sent back with later deliveries (each is
        # signed and stands alone), and no request pays for looking cookies up.
        jar = aiohttp.DummyCookieJar()
        session = aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=jar, trust_env=False)
        async with session:
            self._session, self.fanout.sender = session, self
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
                    if started and not self._drained:
                        await asyncio.sleep(0)
                        continue
                    await self._idle(stop)  # returns at once if woken meanwhile
                self._stop_taking()
                await self._hand_back_queued()
                if self._tasks:
                    await asyncio.wait(self._tasks, timeout=self.config.timeout + 1)
            finally:
                self._stop_taking()
                await self._sign_off()

    def _stop_taking(self) -> None:
        """From now on new deliveries are left to a claim (and any handed over are given back)."""
        self._session = None
        if self.fanout.sender is self:
            self.fanout.sender = None

    async def _hand_back_queued(self) -> None:
        """Stopping: what was claimed but not started goes back now, not when its lease runs out."""
        for sid, queue in list(self._queued.items()):
            while queue:
                claimed = queue.popleft()
                self._held[sid] -= 1
                await self._release(claimed.delivery.id)
        self._queued.clear()

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
            await self.store.meta_set(HEARTBEAT_KEY, self._heartbeat, durable=False)
        if now >= self._next_health:
            self._next_health = now + self.config.health_interval
            window = self.config.disable_after
            for sid in await self.store.disable_failing_subscriptions(now=now, window=window):
                log.warning("subscription.disabled", subscription=sid, reason="failing")
        room = self._room()
        if room <= 0:
            return 0
        limit = min(room, self.config.batch)
        batch = await self.store.claim_delivery_batch(
            now=now,
            lease=self.config.lease,
            limit=limit,
            per_subscription=self._window,
            exclude=self._busy(),
        )
        claimed, events, subs = batch.deliveries, batch.events, batch.subscriptions
        self._drained = len(claimed) < limit
        if not claimed:
            return 0
        self._enqueue(
            session, [_Claimed(d, events.get(d.event_id), subs.get(d.subscription_id), now) for d in claimed]
        )
        return len(claimed)

    def _enqueue(self, session: aiohttp.ClientSession, claimed: list[_Claimed]) -> None:
        """Hold deliveries leased to this worker, queued per endpoint, and start what has a slot."""
        for c in claimed:
            sid = c.delivery.subscription_id
            self._held[sid] = self._held.get(sid, 0) + 1
            self._queued.setdefault(sid, deque()).append(c)
        for sid in {c.delivery.subscription_id for c in claimed}:
            self._start(session, sid)

    def _start(self, session: aiohttp.ClientSession, sid: str) -> None:
        """Start queued deliveries of an endpoint while it has free slots."""
        queue = self._queued.get(sid)
        while queue and self._in_flight.get(sid, 0) < self.config.per_subscription:
            claimed = queue.popleft()
            self._in_flight[sid] = self._in_flight.get(sid, 0) + 1
            self._spawn(self._deliver(session, claimed))
        if queue is not None and not queue:
            del self._queued[sid]

    async def _deliver(self, session: aiohttp.ClientSession, claimed: _Claimed) -> None:
        delivery, event, sub = claimed.delivery, claimed.event, claimed.subscription
        sid = delivery.subscription_id
        slot = True  # this task holds one of the endpoint's slots until its HTTP exchange ends

        def free_slot() -> None:
            nonlocal slot
            if slot:
                slot = False
                self._in_flight[sid] -= 1
                if not self._in_flight[sid]:
                    del self._in_flight[sid]
                self._start(session, sid)

        try:
            late = self.clock() > claimed.claimed_at + self.config.lease - self.config.timeout - LEASE_MARGIN
            if event is None or sub is None or late:
                # deleted or disabled meanwhile, or queued too long to finish within its lease
                free_slot()
                await self.store.release_delivery(delivery.id)
                return
            async with self._global:
                now = self.clock()
                exchange = await self._exchange(session, event, sub, now)
            free_slot()
            await self._record(delivery, event, sub, exchange, now, "worker")
        except Exception as exc:
            log.warning("delivery.error", delivery=delivery.id, error=f"{type(exc).__name__}: {exc}")
        finally:
            free_slot()
            # held drops one at a time: at the window (or the total) it stops being left out of claims
            refill = self._held[sid] == self._window or (
                sum(self._held.values()) == self.config.max_in_flight * PREFETCH
            )
            self._held[sid] -= 1
            if not self._held[sid]:
                del self._held[sid]
            if refill:  # the loop left this endpoint (or everything) out while full: claim again now
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
        exchange = await self._exchange(session, event, sub, now)
        return await self._record(delivery, event, sub, exchange, now, trigger)

    async def _exchange(
        self, session: aiohttp.ClientSession, event: Event, sub: Subscription, now: float
    ) -> _Exchange:
        """The signed POST and what came back (never raises for what the endpoint or network does)."""
        headers = delivery_headers(event, sub, now)
        got = _Exchange()
        started = time.perf_counter()
        try:
            post = session.post(sub.url, data=event.payload, headers=headers, allow_redirects=False)
            async with post as resp:
                got.status_code = resp.status
                got.retry_after = resp.headers.get("retry-after")
                got.excerpt = excerpt(await resp.content.read(EXCERPT_BYTES))
        except TimeoutError:
            got.error = f"timed out after {self.config.timeout:g} s"
        except aiohttp.ClientConnectorError as exc:
            got.error = f"connection failed: {exc.os_error or exc}"
        except aiohttp.ClientError as exc:
            got.error = f"{type(exc).__name__}: {exc}"
        got.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return got

    async def _record(
        self, delivery: Delivery, event: Event, sub: Subscription, got: _Exchange, now: float, trigger: str
    ) -> str:
        """Record one attempt and the delivery's next state; returns the state stored."""
        status_code, error, latency_ms = got.status_code, got.error, got.latency_ms
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
                delivery.schedule_index + 1, status=status_code, retry_after=got.retry_after
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
            response_excerpt=got.excerpt,
            trigger=trigger,
        )
        status = await self.store.record_attempt(
            delivery, attempt, status=status, next_attempt_at=next_at, disable_reason=disable_reason
        )
        if next_at is not None and status == DLV_PENDING:
            self._wake_at(next_at)
        metrics.DELIVERY_ATTEMPTS.labels(status).inc()
        metrics.DELIVERY_LATENCY.observe(latency_ms / 1000)
        # The attempts table is the delivery log (API, CLI); a line per success would be one per
        # delivery, the volume of the traffic itself and 5-10 µs of a delivery's CPU, so successes
        # log at debug (CALLBOARD_LOG_LEVEL=debug), retries at info, exhausted deliveries warn.
        if status == DLV_SUCCEEDED and not self.config.log_successes:
            return status
        emit = log.debug if status == DLV_SUCCEEDED else log.warning if status == DLV_FAILED else log.info
        emit(
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
