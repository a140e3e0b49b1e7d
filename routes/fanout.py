"""Fan-out: which subscriptions an event goes to, decided when the event is stored.

The processor asks `matching()` for the ids to write as deliveries in the same transaction as
the event (the transactional outbox). Subscriptions are re-read when a processing batch's claim
shows the store's subscriptions version moved (migration 0003's triggers bump it on every change
that matters, whichever process made it), so a change made by another process (the CLI) is seen
by the next batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from routes.matching import matches
from storage.records import Subscription
from storage.store import Store


class Fanout:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._subscriptions: list[Subscription] = []
        self._version: str | None = None
        self.delivery_wakeup = asyncio.Event()

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

    def wake(self) -> None:
        """Tell the in-process delivery worker that new deliveries are due."""
        self.delivery_wakeup.set()
