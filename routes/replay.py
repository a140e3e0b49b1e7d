"""Replay: one engine behind `POST /v1/events/{id}/replay`, `POST /v1/replay` and `callboard replay`.

A replay selects (event, subscription) pairs and makes their deliveries due now, with the
original event id as `webhook-id` (consumers dedupe on it). Selection by event ids, or by filter:
time window, event type, provider, one subscription, and which deliveries:

* `failed` — deliveries that ended failed;
* `never-attempted` — pairs that have no delivery at all (the subscription was disabled, or
  created after the event), which is how a re-enabled endpoint recovers what it missed;
* `all` — every matching pair, whatever happened before.

Events stream through the database a batch at a time; a replay of 100,000 events never holds
them all in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from routes.matching import matches
from storage.records import DLV_FAILED, Event, EventFilter, Subscription
from storage.store import Store

STATUSES = ("failed", "all", "never-attempted")
BATCH = 500


class ReplayError(ValueError):
    """A replay request that cannot be run; the message says why."""


@dataclass(frozen=True)
class ReplayRequest:
    event_ids: list[str] = field(default_factory=list)
    since: float | None = None
    until: float | None = None
    type: str | None = None
    provider: str | None = None
    subscription_id: str | None = None
    status: str = "failed"


async def _subscriptions(store: Store, req: ReplayRequest) -> list[Subscription]:
    if req.subscription_id is None:
        return await store.enabled_subscriptions()
    sub = await store.get_subscription(req.subscription_id)
    if sub is None:
        raise ReplayError(f"no subscription {req.subscription_id!r}")
    if not sub.enabled:
        raise ReplayError(f"subscription {sub.id} is disabled ({sub.disabled_reason}); enable it first")
    return [sub]


async def _events(store: Store, req: ReplayRequest) -> AsyncIterator[list[Event]]:
    if req.event_ids:
        for start in range(0, len(req.event_ids), BATCH):
            ids = req.event_ids[start : start + BATCH]
            found = await store.get_events(ids)
            missing = [i for i in ids if i not in found]
            if missing:
                raise ReplayError(f"no event {missing[0]!r}")
            yield [found[i] for i in ids]
        return
    flt = EventFilter(type=req.type, provider=req.provider, since=req.since, until=req.until)
    async for batch in store.iter_events(flt, batch=BATCH):
        yield batch


async def plan(store: Store, req: ReplayRequest) -> AsyncIterator[list[tuple[str, str]]]:
    """The (event id, subscription id) pairs to re-deliver, at most BATCH at a time, oldest first."""
    if req.status not in STATUSES:
        raise ReplayError(f"status must be one of {', '.join(STATUSES)}")
    subs = await _subscriptions(store, req)
    if not subs:
        return
    async for events in _events(store, req):
        known = await store.deliveries_for_events([e.id for e in events])
        existing = {(d.event_id, d.subscription_id): d for d in known}
        pairs: list[tuple[str, str]] = []
        for event in events:
            for sub in subs:
                if not matches(
                    event.type, event.provider, event.metadata, event_types=sub.event_types, filter=sub.filter
                ):
                    continue
                current = existing.get((event.id, sub.id))
                if req.status == "failed" and (current is None or current.status != DLV_FAILED):
                    continue
                if req.status == "never-attempted" and current is not None and current.status != "cancelled":
                    continue
                pairs.append((event.id, sub.id))
        # a batch of events times several subscriptions can pass BATCH pairs: keep the promise
        for start in range(0, len(pairs), BATCH):
            yield pairs[start : start + BATCH]


async def enqueue(store: Store, req: ReplayRequest) -> AsyncIterator[list[str]]:
    """Run the replay: make each planned batch due now; yields the delivery ids per batch."""
    async for pairs in plan(store, req):
        yield await store.enqueue_replay(pairs)
