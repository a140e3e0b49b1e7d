"""The store: every query Callboard makes, over a pluggable backend.

`open_store(url)` picks the backend from `CALLBOARD_DATABASE_URL`: `sqlite:///…` (the embedded
default) or `postgresql://…`. Everything above this package talks to `Store` only.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from storage.backend import Backend
from storage.batching import GroupCommit
from storage.callbacks import SUBSCRIPTIONS_VERSION_KEY, CallbacksStore, ClaimedCallbacks
from storage.deliveries import ClaimedDeliveries, DeliveriesStore
from storage.events import EventsStore
from storage.jobs import JobsStore
from storage.prune import PruneStore
from storage.records import IngestResult, NewCallback
from storage.subscriptions import SubscriptionsStore


class Store(JobsStore, CallbacksStore, EventsStore, SubscriptionsStore, DeliveriesStore, PruneStore):
    def __init__(self, backend: Backend) -> None:
        self.db = backend
        self._ingest: GroupCommit[NewCallback, IngestResult] | None = None

    async def ingest(self, callback: NewCallback) -> IngestResult:
        """Store one callback durably (group commit); return when it is on disk."""
        if self._ingest is None:
            self._ingest = GroupCommit(self.write_callbacks)
        return await self._ingest.submit(callback)

    async def claim_callback_batch(self, *, now: float, lease: float, limit: int) -> ClaimedCallbacks:
        """`claim_callbacks`, with the jobs the claimed callbacks name and the subscriptions'
        version (see migration 0003) as of the claim."""
        if self.db.dialect == "postgres":
            return await self._claim_callback_batch_pg(now=now, lease=lease, limit=limit)
        claimed = await self.claim_callbacks(now=now, lease=lease, limit=limit)
        if not claimed:
            return ClaimedCallbacks([], {}, None)
        jobs = await self.get_jobs(sorted({c.job_id for c in claimed if c.job_id}))
        return ClaimedCallbacks(claimed, jobs, await self.subscriptions_version())

    async def subscriptions_version(self) -> str | None:
        """A value that changes whenever a subscription is added, removed, enabled or disabled,
        or its event types or filter change (None on a database not migrated that far)."""
        return await self.get_meta(SUBSCRIPTIONS_VERSION_KEY)

    async def claim_delivery_batch(
        self, *, now: float, lease: float, limit: int, per_subscription: int, exclude: Sequence[str] = ()
    ) -> ClaimedDeliveries:
        """`claim_deliveries`, with the claimed deliveries' events and enabled subscriptions."""
        if self.db.dialect == "postgres":
            return await self._claim_delivery_batch_pg(
                now=now, lease=lease, limit=limit, per_subscription=per_subscription, exclude=exclude
            )
        deliveries = await self.claim_deliveries(
            now=now, lease=lease, limit=limit, per_subscription=per_subscription, exclude=exclude
        )
        if not deliveries:
            return ClaimedDeliveries([], {}, {})
        events = await self.get_events(list({d.event_id for d in deliveries}))
        subscriptions = {s.id: s for s in await self.enabled_subscriptions()}
        return ClaimedDeliveries(deliveries, events, subscriptions)

    async def ping(self) -> None:
        async with self.db.read() as db:
            await db.fetch("SELECT 1")

    async def get_meta(self, key: str) -> str | None:
        async with self.db.read() as db:
            rows = await db.fetch("SELECT value FROM meta WHERE key = ?", key)
        return str(rows[0]["value"]) if rows else None

    async def meta_setdefault(self, key: str, value: str) -> str:
        """Store `value` under `key` unless a value is there already; return the stored one."""
        async with self.db.transaction() as tx:
            await tx.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", key, value)
            rows = await tx.fetch("SELECT value FROM meta WHERE key = ?", key)
        return str(rows[0]["value"])

    async def meta_set(self, key: str, value: str, *, durable: bool = True) -> None:
        """Store `value` under `key`; `durable=False` for a value whose loss in a power failure
        is harmless (a heartbeat), see `Backend.transaction`."""
        async with self.db.transaction(durable=durable) as tx:
            await tx.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                key,
                value,
            )

    async def close(self) -> None:
        if self._ingest is not None:
            await self._ingest.close()
        if self._attempts is not None:
            await self._attempts.close()
        if self._finishes is not None:
            await self._finishes.close()
        await self.db.close()


def backend_for(url: str) -> Backend:
    if url.startswith(("postgres://", "postgresql://")):
        from storage.postgres import PostgresBackend  # imported lazily: SQLite users never load asyncpg

        return PostgresBackend(url)
    if url.startswith("sqlite:") or "://" not in url:
        from storage.sqlite import SQLiteBackend

        return SQLiteBackend(url)
    raise ValueError(f"unsupported database URL scheme: {url.split('://', 1)[0]}:// (use sqlite:/// or postgresql://)")


@contextlib.asynccontextmanager
async def open_store(url: str, *, migrate: bool = True) -> AsyncIterator[Store]:
    backend = backend_for(url)
    await backend.connect()
    store = Store(backend)
    try:
        if migrate:
            await backend.migrate()
        yield store
    finally:
        await store.close()
