"""Events: one `transcript.completed` or `transcript.failed` per job, its payload stored as sent."""

from __future__ import annotations

from collections.abc import AsyncIterator

from storage import _rows
from storage._base import StoreBase
from storage.records import Event, EventFilter, Page

BATCH = 500


def _event_where(flt: EventFilter, cursor: str | None, *, ascending: bool = False) -> tuple[str, list[object]]:
    return _rows.where(
        {
            "type = ?": flt.type,
            "provider = ?": flt.provider,
            "created_at >= ?": flt.since,
            "created_at < ?": flt.until,
            "job_id = ?": flt.job_id,
            ("id > ?" if ascending else "id < ?"): cursor,
        }
    )


class EventsStore(StoreBase):
    async def get_event(self, event_id: str) -> Event | None:
        async with self.db.read() as db:
            rows = await db.fetch("SELECT * FROM events WHERE id = ?", event_id)
        return _rows.event(rows[0]) if rows else None

    async def get_events(self, event_ids: list[str]) -> dict[str, Event]:
        if not event_ids:
            return {}
        from storage.backend import placeholders

        async with self.db.read() as db:
            rows = await db.fetch(f"SELECT * FROM events WHERE id IN {placeholders(len(event_ids))}", *event_ids)
        return {r["id"]: _rows.event(r) for r in rows}

    async def list_events(self, flt: EventFilter, *, cursor: str | None = None, limit: int = 50) -> Page[Event]:
        clause, args = _event_where(flt, cursor)
        async with self.db.read() as db:
            rows = await db.fetch(f"SELECT * FROM events{clause} ORDER BY id DESC LIMIT ?", *args, limit + 1)
        items = [_rows.event(r) for r in rows[:limit]]
        return Page(items, items[-1].id if len(rows) > limit else None)

    async def iter_events(self, flt: EventFilter, *, batch: int = BATCH) -> AsyncIterator[list[Event]]:
        """Every matching event, oldest first, a batch at a time (never all in memory)."""
        cursor: str | None = None
        while True:
            clause, args = _event_where(flt, cursor, ascending=True)
            async with self.db.read() as db:
                rows = await db.fetch(f"SELECT * FROM events{clause} ORDER BY id LIMIT ?", *args, batch)
            if not rows:
                return
            events = [_rows.event(r) for r in rows]
            yield events
            cursor = events[-1].id
