"""Subscriptions: where events go, which ones, and the secrets that sign them."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from storage import _rows
from storage._base import StoreBase
from storage.records import Page, Subscription


class SubscriptionsStore(StoreBase):
    async def create_subscription(
        self,
        sub_id: str,
        *,
        url: str,
        secret: str,
        event_types: list[str],
        filter: Mapping[str, Any],
        description: str | None,
        enabled: bool = True,
    ) -> Subscription:
        now = time.time()
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                "INSERT INTO subscriptions (id, url, description, event_types, filter, enabled, secret,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                sub_id,
                url,
                description,
                _rows.dumps(event_types),
                _rows.dumps(filter),
                1 if enabled else 0,
                secret,
                now,
                now,
            )
        return _rows.subscription(rows[0])

    async def get_subscription(self, sub_id: str) -> Subscription | None:
        async with self.db.read() as db:
            rows = await db.fetch("SELECT * FROM subscriptions WHERE id = ?", sub_id)
        return _rows.subscription(rows[0]) if rows else None

    async def list_subscriptions(
        self, *, enabled: bool | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page[Subscription]:
        clause, args = _rows.where({"enabled = ?": None if enabled is None else int(enabled), "id < ?": cursor})
        async with self.db.read() as db:
            rows = await db.fetch(f"SELECT * FROM subscriptions{clause} ORDER BY id DESC LIMIT ?", *args, limit + 1)
        items = [_rows.subscription(r) for r in rows[:limit]]
        return Page(items, items[-1].id if len(rows) > limit else None)

    async def enabled_subscriptions(self) -> list[Subscription]:
        async with self.db.read() as db:
            rows = await db.fetch("SELECT * FROM subscriptions WHERE enabled = 1 ORDER BY id")
        return [_rows.subscription(r) for r in rows]

    async def update_subscription(self, sub_id: str, **changes: Any) -> Subscription | None:
        """Set columns by name (`url`, `description`, `event_types`, `filter`, `enabled`, …)."""
        allowed = {
            "url", "description", "event_types", "filter", "enabled", "disabled_reason", "disabled_at",
            "secret", "previous_secret", "previous_secret_expires_at", "failing_since",
        }  # fmt: skip
        unknown = set(changes) - allowed
        assert not unknown, f"unknown subscription columns: {unknown}"
        sets, args = ["updated_at = ?"], [time.time()]
        for column, value in changes.items():
            if column in ("event_types", "filter"):
                value = _rows.dumps(value)
            elif column == "enabled":
                value = 1 if value else 0
            sets.append(f"{column} = ?")
            args.append(value)
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                f"UPDATE subscriptions SET {', '.join(sets)} WHERE id = ? RETURNING *", *args, sub_id
            )
        return _rows.subscription(rows[0]) if rows else None

    async def delete_subscription(self, sub_id: str) -> bool:
        # deliveries first, in id order, then the subscription: the order attempt records lock
        # them in (one at a time, or a batch in delivery-id order), so the two never deadlock
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE deliveries SET status = 'cancelled', lease_until = NULL, next_attempt_at = NULL"
                " WHERE id IN (SELECT id FROM deliveries WHERE subscription_id = ? AND status = 'pending'"
                f" ORDER BY id{self.db.for_update})",
                sub_id,
            )
            rows = await tx.fetch("DELETE FROM subscriptions WHERE id = ? RETURNING id", sub_id)
        return bool(rows)
