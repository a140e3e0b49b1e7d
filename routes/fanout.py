"""Fan-out: which subscriptions an event goes to, decided when the event is stored.

The processor asks `matching()` for the ids to write as deliveries in the same transaction as
the event (the transactional outbox). Subscriptions are re-read when a processing batch's claim
shows the store's subscriptions version moved (migration 0003's triggers bump it on every change
that matters, whichever process made it), so a change made by another process (the CLI) is seen
by the next batch.

`finish()` writes a finished job and hands its deliveries straight to this process's delivery
worker (`Sender`) when one is running with room: written already leased to it in the same
transaction, they are sent at once, without a wake-up and a claim (a write transaction of its
own, queued behind the others on SQLite's one writer) between the event and its first attempt.
Otherwise they are written due, for whichever worker claims them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from routes.matching import matches
from storage.records import Delivery, Event, Finish, Subscription
from storage.store import Store


class Sender(Protocol):
    """The in-process delivery worker, as `Fanout.finish` hands deliveries to it."""

    def lease_until(self, subscription_ids: list[str]) -> float | None:
        """Until when deliveries to these endpoints written now would be leased to it; None when
        it takes none now."""

    def take(self, event: Event, leased: list[tuple[Delivery, Subscription]], lease_until: float) -> None:
        """Send deliveries written leased to it (or hand them back, when it has stopped meanwhile)."""


class Fanout:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._subscriptions: list[Subscription] = []
        self._version: str | None = None
        self.delivery_wakeup = asyncio.Event()
        self.sender: Sender | None = None  # set by the delivery worker while it runs

    async def refresh(self, version: str | None = None) -> None:
        """Re-read the enabled subscriptions, unless `version` (the store's subscriptions version,
        read with a claim) shows nothing that matters changed since the last read."""
        if version is not None and version == self._version:
            return
        self._subscriptions = await self.store.enabled_subscriptions()
        self._version = version

    def matching(self, event_type: str, provider: str, metadata: Mapping[str, Any]) -> list[str]:
        return [
            s.id
            for s in self._subscriptions
            if matches(event_type, provider, metadata, event_types=s.event_types, filter=s.filter)
        ]

    async def finish(self, finish: Finish) -> bool:
        """`Store.finish_job`, with the deliveries handed to the in-process worker when it has room."""
        sender, lease_until = self.sender, None
        if sender is not None and finish.subscription_ids:
            lease_until = sender.lease_until(finish.subscription_ids)
        if lease_until is not None:
            finish = msgspec.structs.replace(finish, lease_until=lease_until)
        finished = await self.store.finish(finish)
        if sender is not None and lease_until is not None and finished.leased:
            sender.take(finish.event, finished.leased, lease_until)
        elif finished.created and finish.subscription_ids:
            self.wake()
        return finished.created

    def wake(self) -> None:
        """Tell the in-process delivery worker that new deliveries are due."""
        self.delivery_wakeup.set()
