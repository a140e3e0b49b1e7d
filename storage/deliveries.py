"""Deliveries and their attempts: the outbox the delivery worker drains.

A delivery is one (event, subscription) pair; every HTTP attempt at it is an `attempts` row.
Workers claim due deliveries with a lease longer than the HTTP timeout, so a worker killed
mid-request leaves the delivery to be taken again when the lease runs out. Claims are spread
over subscriptions (a window per subscription), so one endpoint's backlog never starves others.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec

from storage import _rows
from storage._base import StoreBase
from storage.backend import placeholders
from storage.batching import GroupCommit, write_or_split
from storage.ids import new_id
from storage.records import DLV_PENDING, DLV_SUCCEEDED, Attempt, Delivery, Event, Page, Subscription

#: Attempt records are written in batches (`GroupCommit`) that linger: nobody waits on a record
#: (the endpoint's slot is free before it is written), so a batch of more than one waits up to
#: ATTEMPT_LINGER seconds, or until it holds ATTEMPT_FILL, for more. With one endpoint's 8 requests
#: in flight a SQLite commit went from 10.8 to 16.1 attempts, and the worker's CPU per delivery
#: fell by about 7 % (`bench.inprocess --deliveries 20000`, deep, after / before: SQLite 0.83-1.07
#: in 20 pairs, median 0.93; PostgreSQL 0.84-1.09 in 8, median 0.95; wide 0.87-1.15, unchanged).
#: A lone attempt is written at once.
ATTEMPT_LINGER = 0.003
ATTEMPT_FILL = 64

REPLAY_UPSERT = (
    "INSERT INTO deliveries (id, event_id, subscription_id, status, attempts, schedule_index,"
    " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, 0, 0, ?, ?, ?)"
    " ON CONFLICT (event_id, subscription_id) DO UPDATE SET status = excluded.status,"
    " schedule_index = 0, next_attempt_at = excluded.next_attempt_at, lease_until = NULL,"
    " updated_at = excluded.updated_at"
)

#: A batch of attempts on PostgreSQL in one statement (`_record_batch_pg`): the portable version's
#: statements (and BEGIN, COMMIT) as one. The deliveries are locked in id order first, then the
#: subscriptions in id order once the deliveries are updated (each step waits for the one before
#: through a join on its row count), the order every transaction that touches both locks them in.
#: A subscription's health and its disabling are one update (a statement cannot update a row twice).
_PG_RECORD_BATCH = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::int[], $5::float8[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::float8[])
        AS i (attempt_id, delivery_id, attempted_at, status_code, latency_ms, error, excerpt, trigger, status, next_at)
),
locked AS (
    SELECT id FROM deliveries WHERE id = ANY($2::text[]) ORDER BY id FOR UPDATE
),
attempt AS (
    INSERT INTO attempts (id, delivery_id, attempted_at, status_code, latency_ms, error, response_excerpt, trigger)
    SELECT attempt_id, delivery_id, attempted_at, status_code, latency_ms, error, excerpt, trigger FROM input
    RETURNING id
),
delivery AS (
    UPDATE deliveries d SET
        status = CASE WHEN d.status = 'cancelled' AND i.status = 'pending' THEN d.status ELSE i.status END,
        next_attempt_at = CASE WHEN d.status = 'cancelled' AND i.status = 'pending' THEN NULL ELSE i.next_at END,
        attempts = d.attempts + 1, schedule_index = d.schedule_index + 1, lease_until = NULL,
        last_status_code = i.status_code, last_error = i.error, updated_at = $11::float8
    FROM input i, (SELECT count(*) FROM locked) AS before
    WHERE d.id = i.delivery_id
    RETURNING d.id, d.status
),
health AS (
    SELECT * FROM unnest($12::text[], $13::text[], $14::float8[], $15::text[], $16::float8[])
        AS h (subscription_id, mode, since, disable_reason, disabled_at)
),
held AS (
    SELECT s.id FROM subscriptions s, (SELECT count(*) FROM delivery) AS after
    WHERE s.id = ANY($12::text[]) ORDER BY s.id FOR UPDATE OF s
),
subscription AS (
    UPDATE subscriptions s SET
        failing_since = CASE h.mode WHEN 'clear' THEN NULL WHEN 'set' THEN coalesce(s.failing_since, h.since)
                        ELSE h.since END,
        enabled = CASE WHEN h.disable_reason IS NOT NULL AND s.enabled = 1 THEN 0 ELSE s.enabled END,
        disabled_reason = CASE WHEN h.disable_reason IS NOT NULL AND s.enabled = 1 THEN h.disable_reason
                          ELSE s.disabled_reason END,
        disabled_at = CASE WHEN h.disable_reason IS NOT NULL AND s.enabled = 1 THEN h.disabled_at
                      ELSE s.disabled_at END,
        updated_at = CASE WHEN h.disable_reason IS NOT NULL AND s.enabled = 1 THEN h.disabled_at
                     ELSE s.updated_at END
    FROM health h, (SELECT count(*) FROM held) AS before
    WHERE s.id = h.subscription_id
      AND ((h.mode = 'clear' AND s.failing_since IS NOT NULL) OR (h.mode = 'set' AND s.failing_since IS NULL)
           OR h.mode = 'overwrite' OR (h.disable_reason IS NOT NULL AND s.enabled = 1))
    RETURNING s.id
)
SELECT id, status FROM delivery
"""


_INSERT_ATTEMPT = (
    "INSERT INTO attempts (id, delivery_id, attempted_at, status_code, latency_ms, error,"
    " response_excerpt, trigger) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_KEEP_CANCELLED = "status = 'cancelled' AND CAST(? AS TEXT) = 'pending'"
_UPDATE_DELIVERY = (
    f"UPDATE deliveries SET status = CASE WHEN {_KEEP_CANCELLED} THEN status ELSE CAST(? AS TEXT) END,"
    f" next_attempt_at = CASE WHEN {_KEEP_CANCELLED} THEN NULL ELSE CAST(? AS DOUBLE PRECISION) END,"
    " attempts = attempts + 1, schedule_index = schedule_index + 1, lease_until = NULL,"
    " last_status_code = CAST(? AS INTEGER), last_error = CAST(? AS TEXT), updated_at = ? WHERE id = ?"
)
#: a subscription's health after a batch of its attempts (`_health_row`): `clear` (the last one
#: succeeded), `set` (none succeeded: failing since the first, unless already failing) or
#: `overwrite` (failing since the first failure after the last success); no write when unchanged
_UPDATE_HEALTH = (
    "UPDATE subscriptions SET failing_since ="
    " CASE WHEN CAST(? AS TEXT) = 'clear' THEN NULL ELSE CAST(? AS DOUBLE PRECISION) END"
    " WHERE id = ? AND ((CAST(? AS TEXT) = 'clear' AND failing_since IS NOT NULL)"
    " OR (CAST(? AS TEXT) = 'set' AND failing_since IS NULL) OR CAST(? AS TEXT) = 'overwrite')"
)
_DISABLE = (
    "UPDATE subscriptions SET enabled = 0, disabled_reason = ?, disabled_at = ?, updated_at = ?"
    " WHERE id = ? AND enabled = 1"
)


class Recorded(msgspec.Struct, frozen=True):
    """One attempt to record with the delivery's new state (see `record_attempt`)."""

    delivery: Delivery
    attempt: Attempt
    status: str
    next_attempt_at: float | None
    disable_reason: str | None


def _attempt_row(a: Attempt) -> tuple[object, ...]:
    return (a.id, a.delivery_id, a.attempted_at, a.status_code, a.latency_ms, a.error, a.response_excerpt, a.trigger)


def _delivery_row(r: Recorded, updated: float) -> tuple[object, ...]:
    code, error = r.attempt.status_code, r.attempt.error
    return (r.status, r.status, r.status, r.next_attempt_at, code, error, updated, r.delivery.id)


def _health(records: list[Recorded]) -> tuple[str, float | None]:
    """One subscription's attempts, in order, as the one health update (mode, since) that leaves
    it as applying each attempt's update in turn would."""
    succeeded = [i for i, r in enumerate(records) if r.status == DLV_SUCCEEDED]
    if succeeded and succeeded[-1] == len(records) - 1:
        return "clear", None
    if succeeded:
        return "overwrite", records[succeeded[-1] + 1].attempt.attempted_at
    return "set", records[0].attempt.attempted_at


def _health_row(sub_id: str, records: list[Recorded]) -> tuple[object, ...]:
    """`_health` as the arguments of `_UPDATE_HEALTH`."""
    mode, since = _health(records)
    return (mode, since, sub_id, mode, mode, mode)


def _per_subscription(batch: list[Recorded]) -> dict[str, list[Recorded]]:
    """The batch's records by subscription, subscriptions in id order, each one's in batch order."""
    grouped: dict[str, list[Recorded]] = {}
    for r in sorted(batch, key=lambda r: r.delivery.subscription_id):
        grouped.setdefault(r.delivery.subscription_id, []).append(r)
    return grouped


def _disable_row(r: Recorded) -> tuple[object, ...]:
    now = r.attempt.attempted_at
    return (r.disable_reason, now, now, r.delivery.subscription_id)


#: what makes a delivery due, as the due indexes' own condition (migration 0007): written out, not
#: a parameter, so that a plan made for any values still matches those partial indexes
DUE = f"status = '{DLV_PENDING}'"

#: a PostgreSQL claim considers this many times its limit of candidates, so that the rows one
#: concurrent claim takes are replaced by the next ones due (see `_pg_claim`)
CLAIM_CANDIDATES = 2


def _pg_claim_args(
    now: float, lease: float, limit: int, per_subscription: int, exclude: Sequence[str]
) -> tuple[object, ...]:
    candidates = limit * CLAIM_CANDIDATES
    return (now + lease, now, now, per_subscription, *exclude, candidates, now, limit)


def sqlite_claim(excluded: int) -> str:
    """The SQLite claim (`UPDATE … RETURNING *`), for `sqlite_claim_args`.

    Per enabled subscription, the id of its `per_subscription`-th due row (an index range scan on
    deliveries_subscription_due that stops there; none when it has fewer) and that row's due time,
    looked up by the id (one scan, not a second one for the time: claims of 200 over 100
    endpoints, 9 % less CPU; docs/benchmarks.md, change 53), then its due rows up to that one,
    then the earliest `limit` of all of those. No ranking of the whole
    backlog, which cost milliseconds per claim with thousands due. The second range is bounded by
    `coalesce(cut.at, now)` alone: with `next_attempt_at <= now` beside it (true of every row up to
    cut.at) SQLite bounded the index range by that instead, and read every pending row of the
    endpoint, leased ones included, on every claim. Every scan of `deliveries` here is of that
    index alone, the lease included (migration 0004): no row is looked up to be skipped."""
    not_in = f" AND s.id NOT IN {placeholders(excluded)}" if excluded else ""
    unleased = f"x.{DUE} AND (x.lease_until IS NULL OR x.lease_until < ?)"
    nth = f"FROM deliveries x WHERE x.subscription_id = s.id AND {unleased} AND x.next_attempt_at <= ?"
    nth += " ORDER BY x.next_attempt_at, x.id LIMIT 1 OFFSET ?"
    return (
        f"WITH cut_ids AS MATERIALIZED (SELECT s.id AS sid, (SELECT x.id {nth}) AS last"
        f" FROM subscriptions s WHERE s.enabled = 1{not_in}),"
        " cut AS MATERIALIZED (SELECT sid, last,"
        " (SELECT y.next_attempt_at FROM deliveries y WHERE y.id = cut_ids.last) AS at FROM cut_ids)"
        " UPDATE deliveries SET lease_until = ? WHERE id IN ("
        "SELECT x.id FROM cut CROSS JOIN deliveries x ON x.subscription_id = cut.sid"
        f" WHERE {unleased} AND x.next_attempt_at <= coalesce(cut.at, ?)"
        " AND (cut.at IS NULL OR (x.next_attempt_at, x.id) <= (cut.at, cut.last))"
        " ORDER BY x.next_attempt_at, x.id LIMIT ?) RETURNING *"
    )


def sqlite_claim_args(
    now: float, lease: float, limit: int, per_subscription: int, exclude: Sequence[str]
) -> tuple[object, ...]:
    return (now, now, per_subscription - 1, *exclude, now + lease, now, now, limit)


def deliveries_listing(
    *, event_id: str | None, subscription_id: str | None, status: str | None, cursor: str | None, rows: int
) -> tuple[str, list[Any]]:
    """`list_deliveries`' statement and its arguments, newest first, `rows` at most. Beside a
    status that is not `succeeded`, the condition of the partial index on status, written out so
    that any plan can use it (deliveries_status, migration 0007); succeeded rows are most of the
    table, found soon enough by the primary key's scan."""
    few = "" if status == DLV_SUCCEEDED else f" AND status <> '{DLV_SUCCEEDED}'"
    clause, args = _rows.where(
        {
            "event_id = ?": event_id,
            "subscription_id = ?": subscription_id,
            f"status = ?{few}": status,
            "id < ?": cursor,
        }
    )
    return f"SELECT * FROM deliveries{clause} ORDER BY id DESC LIMIT ?", [*args, rows]


class ClaimedDeliveries(msgspec.Struct, frozen=True):
    """Claimed deliveries, earliest first, with their events and enabled subscriptions by id (one
    deleted or disabled meanwhile is missing)."""

    deliveries: list[Delivery]
    events: dict[str, Event]
    subscriptions: dict[str, Subscription]


def _due_order(rows: list[Any]) -> list[Delivery]:
    """Claimed rows earliest first (RETURNING has no order of its own)."""
    return sorted((_rows.delivery(r) for r in rows), key=lambda d: (d.next_attempt_at or 0.0, d.id))


class DeliveriesStore(StoreBase):
    _attempts: GroupCommit[Recorded, str | Exception] | None = None

    async def claim_deliveries(
        self, *, now: float, lease: float, limit: int, per_subscription: int, exclude: Sequence[str] = ()
    ) -> list[Delivery]:
        """Lease due deliveries of enabled subscriptions, at most `per_subscription` per endpoint."""
        if self.db.dialect == "postgres":
            return await self._claim_deliveries_pg(
                now=now, lease=lease, limit=limit, per_subscription=per_subscription, exclude=exclude
            )
        async with self.db.transaction(durable=False) as tx:  # a lease: lost in a power failure, claimed again
            rows = await tx.fetch(
                sqlite_claim(len(exclude)), *sqlite_claim_args(now, lease, limit, per_subscription, exclude)
            )
        return _due_order(rows)

    async def _claim_deliveries_pg(
        self, *, now: float, lease: float, limit: int, per_subscription: int, exclude: Sequence[str]
    ) -> list[Delivery]:
        """The same claim without ranking the whole backlog: per enabled subscription, its first
        `per_subscription` due rows (LATERAL … LIMIT, a top-N sort), then the portable version's
        re-check, order, limit and SKIP LOCKED. One statement, so no BEGIN/COMMIT around it."""
        async with self.db.autocommit(durable=False) as db:  # a lease
            rows = await db.fetch(
                self._pg_claim(len(exclude)), *_pg_claim_args(now, lease, limit, per_subscription, exclude)
            )
        return _due_order(rows)

    async def _claim_delivery_batch_pg(
        self, *, now: float, lease: float, limit: int, per_subscription: int, exclude: Sequence[str]
    ) -> ClaimedDeliveries:
        """`_claim_deliveries_pg` and, in the same statement, what sending needs: each claimed
        event (on the first row of its deliveries) and enabled subscription (on the first row of
        its own). One round trip instead of three.

        The first rows are picked before the joins, so that only they look their event and
        subscription up, and the window functions sort the claimed rows without the events'
        payloads: a claim of 200 deliveries to 100 endpoints (two events) cost PostgreSQL 34-41 µs
        a delivery against 49-55 when every row joined its event and the joined rows were sorted
        (docs/benchmarks.md, change 52)."""
        first = "row_number() OVER (PARTITION BY c.{} ORDER BY c.id) = 1"
        async with self.db.autocommit(durable=False) as db:  # a lease
            rows = await db.fetch(
                f"WITH claimed AS ({self._pg_claim(len(exclude))}),"
                f" ranked AS (SELECT c.*, {first.format('event_id')} AS first_event,"
                f" {first.format('subscription_id')} AS first_subscription FROM claimed c)"
                " SELECT c.*, e AS event, s AS subscription FROM ranked c"
                " LEFT JOIN events e ON c.first_event AND e.id = c.event_id"
                " LEFT JOIN subscriptions s ON c.first_subscription AND s.id = c.subscription_id AND s.enabled = 1",
                *_pg_claim_args(now, lease, limit, per_subscription, exclude),
            )
        events = {r["event"]["id"]: _rows.event(r["event"]) for r in rows if r["event"] is not None}
        subs = {r["subscription"]["id"]: _rows.subscription(r["subscription"]) for r in rows if r["subscription"]}
        return ClaimedDeliveries(_due_order(rows), events, subs)

    def _pg_claim(self, excluded: int) -> str:
        """The PostgreSQL claim (`UPDATE … RETURNING *`), for `_pg_claim_args`.

        The candidates (each enabled endpoint's first due rows, then the earliest
        `CLAIM_CANDIDATES` × `limit` of them) are an uncorrelated `ARRAY(…)`, computed once, then
        looked up by id, re-checked and locked. The shape keeps the plan sane when the table's
        statistics are older than its backlog (a fresh table, autovacuum not yet round, or off):
        as `d.id IN (<candidates>)` the planner re-ran the candidates once per pending row
        (31 ms a claim with 400 pending; docs/benchmarks.md, change 28). The re-check is written
        `(d.status = 'pending') IS TRUE` (the same, for a NOT NULL column) so that no index on
        `status` matches it and the primary key's is the one left. The candidates outnumber
        `limit` so that rows another claim locks or leases meanwhile (skipped, or dropped by the
        re-check) are replaced: a short claim still means nothing else was due, which the worker
        relies on."""
        not_in = f" AND s.id NOT IN {placeholders(excluded)}" if excluded else ""
        return (
            "UPDATE deliveries SET lease_until = ? WHERE id IN ("
            "SELECT d.id FROM deliveries d WHERE d.id = ANY(ARRAY("
            "SELECT due.id FROM subscriptions s CROSS JOIN LATERAL (SELECT x.id, x.next_attempt_at FROM deliveries x"
            f" WHERE x.subscription_id = s.id AND x.{DUE} AND x.next_attempt_at <= ?"
            " AND (x.lease_until IS NULL OR x.lease_until < ?) ORDER BY x.next_attempt_at, x.id LIMIT ?) AS due"
            f" WHERE s.enabled = 1{not_in} ORDER BY due.next_attempt_at, due.id LIMIT ?))"
            f" AND (d.{DUE}) IS TRUE AND (d.lease_until IS NULL OR d.lease_until < ?)"
            f" ORDER BY d.next_attempt_at LIMIT ?{self.db.skip_locked}) RETURNING *"
        )

    async def record_attempt(
        self,
        delivery: Delivery,
        attempt: Attempt,
        *,
        status: str,
        next_attempt_at: float | None,
        disable_reason: str | None = None,
    ) -> str:
        """Write one attempt and the delivery's new state; keep the subscription's health current.

        A delivery cancelled meanwhile (its subscription was deleted while the attempt was in
        flight) is not rescheduled: a `pending` outcome leaves it `cancelled`. Returns the
        delivery's status as stored. Concurrent calls share one transaction (group commit).
        """
        if self._attempts is None:
            self._attempts = GroupCommit(self.write_attempts, linger=ATTEMPT_LINGER, fill=ATTEMPT_FILL)
        result = await self._attempts.submit(Recorded(delivery, attempt, status, next_attempt_at, disable_reason))
        if isinstance(result, Exception):
            raise result
        return result

    async def write_attempts(self, batch: list[Recorded]) -> list[str | Exception]:
        """Record a batch of attempts in one transaction (the group-commit flush), in batch order.

        If the batch fails as a whole, each attempt is recorded alone, so one that cannot be
        written (an attempt id already taken, say) fails by itself, not the others with it. On
        PostgreSQL a batch is one statement (`_PG_RECORD_BATCH`), unless it holds two attempts at
        one delivery (a statement cannot update a row twice).
        """
        one_statement = self.db.dialect == "postgres" and len({r.delivery.id for r in batch}) == len(batch)
        return await write_or_split(batch, self._record_batch_pg if one_statement else self._record_many)

    async def _record_many(self, batch: list[Recorded]) -> list[str]:
        """The portable version: each statement run once over the whole batch. Rows are written
        in delivery-id order, then subscriptions in id order (each subscription's attempts in
        batch order): every transaction locks rows in the same order, so none deadlock."""
        in_order = sorted(batch, key=lambda r: r.delivery.id)
        updated = time.time()
        async with self.db.transaction() as tx:
            await tx.executemany(_INSERT_ATTEMPT, [_attempt_row(r.attempt) for r in in_order])
            await tx.executemany(
                _UPDATE_DELIVERY,
                [_delivery_row(r, updated) for r in in_order],
            )
            # Only a `pending` outcome can be stored as something else (a delivery cancelled
            # meanwhile stays cancelled); a final one is stored as given. So the statuses are read
            # back for those alone: none, when every attempt of the batch succeeded.
            retried = [r.delivery.id for r in in_order if r.status == DLV_PENDING]
            rows = (
                await tx.fetch(f"SELECT id, status FROM deliveries WHERE id IN {placeholders(len(retried))}", *retried)
                if retried
                else []
            )
            per_subscription = _per_subscription(batch)
            await tx.executemany(_UPDATE_HEALTH, [_health_row(sid, rs) for sid, rs in per_subscription.items()])
            gone = [r for rs in per_subscription.values() for r in rs if r.disable_reason is not None]
            if gone:
                await tx.executemany(_DISABLE, [_disable_row(r) for r in gone])
        stored = {row["id"]: str(row["status"]) for row in rows}
        return [stored.get(r.delivery.id, r.status) for r in batch]

    async def _record_batch_pg(self, batch: list[Recorded]) -> list[str]:
        attempts = list(zip(*(_attempt_row(r.attempt) for r in batch), strict=True))
        health: list[tuple[object, ...]] = []
        for sid, rs in _per_subscription(batch).items():
            mode, since = _health(rs)
            gone = next((r for r in rs if r.disable_reason is not None), None)
            reason, at = (gone.disable_reason, gone.attempt.attempted_at) if gone else (None, None)
            health.append((sid, mode, since, reason, at))
        async with self.db.autocommit() as db:  # one statement: its own transaction
            rows = await db.fetch(
                _PG_RECORD_BATCH,
                *(list(column) for column in attempts),
                [r.status for r in batch],
                [r.next_attempt_at for r in batch],
                time.time(),
                *(list(column) for column in zip(*health, strict=True)),
            )
        stored = {row["id"]: str(row["status"]) for row in rows}
        return [stored.get(r.delivery.id, r.status) for r in batch]

    async def release_delivery(self, delivery_id: str) -> None:
        """Give a claimed delivery back without an attempt (the worker is stopping)."""
        async with self.db.transaction(durable=False) as tx:  # lost, the lease runs out instead
            await tx.execute("UPDATE deliveries SET lease_until = NULL WHERE id = ?", delivery_id)

    async def disable_failing_subscriptions(self, *, now: float, window: float) -> list[str]:
        """Disable subscriptions whose every delivery has failed for `window` seconds."""
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                "UPDATE subscriptions SET enabled = 0, disabled_at = ?, updated_at = ?,"
                " disabled_reason = ? WHERE enabled = 1 AND failing_since IS NOT NULL AND failing_since <= ?"
                " RETURNING id",
                now,
                now,
                f"every delivery failed for {window:g} s",
                now - window,
            )
        return [r["id"] for r in rows]

    async def get_delivery(self, delivery_id: str) -> tuple[Delivery, list[Attempt]] | None:
        async with self.db.read() as db:
            rows = await db.fetch("SELECT * FROM deliveries WHERE id = ?", delivery_id)
            if not rows:
                return None
            attempts = await db.fetch(
                "SELECT * FROM attempts WHERE delivery_id = ? ORDER BY attempted_at, id", delivery_id
            )
        return _rows.delivery(rows[0]), [_rows.attempt(a) for a in attempts]

    async def list_deliveries(
        self,
        *,
        event_id: str | None = None,
        subscription_id: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Delivery]:
        sql, args = deliveries_listing(
            event_id=event_id, subscription_id=subscription_id, status=status, cursor=cursor, rows=limit + 1
        )
        async with self.db.read() as db:
            rows = await db.fetch(sql, *args)
        items = [_rows.delivery(r) for r in rows[:limit]]
        return Page(items, items[-1].id if len(rows) > limit else None)

    async def deliveries_for_events(self, event_ids: Sequence[str]) -> list[Delivery]:
        if not event_ids:
            return []
        async with self.db.read() as db:
            rows = await db.fetch(
                f"SELECT * FROM deliveries WHERE event_id IN {placeholders(len(event_ids))}", *event_ids
            )
        return [_rows.delivery(r) for r in rows]

    async def count_deliveries(self, ids: Sequence[str], status: str) -> int:
        if not ids:
            return 0
        async with self.db.read() as db:
            rows = await db.fetch(
                f"SELECT COUNT(*) AS n FROM deliveries WHERE status = ? AND id IN {placeholders(len(ids))}",
                status,
                *ids,
            )
        return int(rows[0]["n"])

    async def enqueue_replay(
        self, pairs: Sequence[tuple[str, str]], *, now: float | None = None
    ) -> list[str]:
        """Make (event, subscription) pairs due now, creating deliveries that never existed.

        The delivery keeps its id and history; its retry schedule starts over. Returns the ids.
        """
        if not pairs:
            return []
        now = time.time() if now is None else now
        async with self.db.transaction() as tx:
            await tx.executemany(
                REPLAY_UPSERT, [(new_id("dlv", now), e, s, DLV_PENDING, now, now, now) for e, s in pairs]
            )
            rows: list[Any] = []
            for start in range(0, len(pairs), 400):
                chunk = pairs[start : start + 400]
                cond = " OR ".join(["(event_id = ? AND subscription_id = ?)"] * len(chunk))
                args = [v for p in chunk for v in p]
                rows += await tx.fetch(f"SELECT id FROM deliveries WHERE {cond}", *args)
            await self.db.notify(tx, "deliveries")
        return [r["id"] for r in rows]


