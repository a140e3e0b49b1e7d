"""The inbox: raw callbacks stored before they are acknowledged, then processed exactly once.

`ingest()` goes through group commit. A provider's retry of a callback (same provider and dedupe
key) is not stored twice; a callback for a job that does not exist is refused in the same batch.
Processing claims rows with a lease, so a process killed mid-way leaves nothing stuck: the lease
runs out and another pass takes the row again.

On PostgreSQL, the three writes of the hot path (a batch of callbacks, a claim, a finished job)
are each one statement run in its own transaction: the same rows and the same outcomes as the
portable multi-statement versions, in one round trip instead of six to nine (BEGIN, each
statement, NOTIFY, COMMIT), which is what a PostgreSQL server short of CPU makes expensive. The
batch of callbacks returns only what it stored; a batch in which something was not stored (a
provider's retry, a job that does not exist) reads afterwards which it was.
Concurrent finishes share one transaction on both backends (a group commit): on SQLite each of
its statements runs once for the whole batch (executemany) rather than once per job.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from storage import _rows
from storage._base import StoreBase
from storage.backend import Executor, placeholders
from storage.batching import GroupCommit, write_or_split
from storage.ids import new_id
from storage.records import (
    CB_DONE,
    CB_FAILED,
    CB_IGNORED,
    CB_PENDING,
    DLV_PENDING,
    Callback,
    Delivery,
    Event,
    Finish,
    Finished,
    IngestResult,
    Job,
    NewCallback,
    Subscription,
)

_INSERT = (
    "INSERT INTO callbacks (id, provider, dedupe_key, job_id, provider_job_id, job_hint, method, headers,"
    " query, body, received_at, status, attempts, next_attempt_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)"
    " ON CONFLICT (provider, dedupe_key) DO NOTHING"
)


def _insert_row(c: NewCallback) -> tuple[object, ...]:
    return (
        c.id,
        c.provider,
        c.dedupe_key,
        c.job_id,
        c.provider_job_id,
        c.job_hint,
        c.method,
        _rows.dumps(c.headers),
        _rows.dumps(c.query),
        c.body,
        c.received_at,
        CB_PENDING,
        c.received_at,
    )


def _event_row(ev: Event) -> tuple[object, ...]:
    """An event's columns, in the order of `INSERT INTO events` in both versions of finish_job."""
    metadata = _rows.dumps(ev.metadata)
    return (ev.id, ev.type, ev.job_id, ev.transcript_id, ev.provider, metadata, ev.created_at, ev.payload)


_PG_WRITE_CALLBACKS = """
WITH stored AS (
    INSERT INTO callbacks (id, provider, dedupe_key, job_id, provider_job_id, job_hint, method, headers,
                           query, body, received_at, status, attempts, next_attempt_at)
    SELECT b.id, b.provider, b.dedupe_key, b.job_id, b.provider_job_id, b.job_hint, b.method, b.headers,
           b.query, b.body, b.received_at, $12::text, 0, b.received_at
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::text[], $9::text[], $10::bytea[], $11::float8[]) WITH ORDINALITY
        AS b (id, provider, dedupe_key, job_id, provider_job_id, job_hint, method, headers, query, body,
              received_at, n)
    WHERE b.job_id IS NULL OR EXISTS (SELECT FROM jobs j WHERE j.id = b.job_id)
    ORDER BY b.n  -- in batch order: of two callbacks with one dedupe key, the first is stored
    ON CONFLICT (provider, dedupe_key) DO NOTHING
    RETURNING id
),
woken AS (
    SELECT pg_notify('callboard_callbacks', '') WHERE EXISTS (SELECT 1 FROM stored)
)
SELECT id FROM stored UNION ALL SELECT NULL FROM woken
"""

#: `finish_job` on PostgreSQL for a batch of jobs (distinct), in one statement: the portable
#: version's statements (and BEGIN, COMMIT) for every job of the batch at once. Returns the ids of
#: the jobs whose transcript was inserted (the others had finished already), then the deliveries
#: written leased, each with its subscription.
_PG_FINISH_JOBS = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::float8[], $12::bytea[], $13::text[], $14::text[])
        AS i (transcript_id, job_id, job_status, body, event_id, event_type, event_job_id, event_transcript_id,
              provider, metadata, event_created_at, payload, error, callback_id)
),
transcript AS (
    INSERT INTO transcripts (id, job_id, status, body, created_at)
    SELECT transcript_id, job_id, job_status, body, $15::float8 FROM input
    ON CONFLICT (job_id) DO NOTHING
    RETURNING job_id
),
event AS (
    INSERT INTO events (id, type, job_id, transcript_id, provider, metadata, created_at, payload)
    SELECT i.event_id, i.event_type, i.event_job_id, i.event_transcript_id, i.provider, i.metadata,
           i.event_created_at, i.payload
    FROM input i JOIN transcript t ON t.job_id = i.job_id
    RETURNING id
),
delivery AS (
    INSERT INTO deliveries (id, event_id, subscription_id, status, attempts, schedule_index,
                            next_attempt_at, lease_until, created_at, updated_at)
    SELECT d.id, d.event_id, d.subscription_id, $19::text, 0, 0, $15::float8, d.lease_until, $15::float8,
           $15::float8
    FROM unnest($16::text[], $17::text[], $18::text[], $23::float8[]) AS d (id, event_id, subscription_id, lease_until)
    WHERE d.event_id IN (SELECT id FROM event)
      AND d.subscription_id IN (SELECT id FROM subscriptions WHERE enabled = 1)
    ON CONFLICT (event_id, subscription_id) DO NOTHING
    RETURNING id, event_id, subscription_id, lease_until
),
job AS (
    UPDATE jobs j SET status = i.job_status, error = i.error, completed_at = $15::float8,
                      updated_at = $15::float8, reconcile_at = NULL
    FROM input i JOIN transcript t ON t.job_id = i.job_id
    WHERE j.id = i.job_id
    RETURNING j.id
),
callback AS (
    UPDATE callbacks c SET
        status = CASE WHEN t.job_id IS NOT NULL THEN $20::text ELSE $21::text END,
        processed_at = $15::float8, lease_until = NULL,
        last_error = CASE WHEN t.job_id IS NOT NULL THEN NULL ELSE $22::text END
    FROM input i LEFT JOIN transcript t ON t.job_id = i.job_id
    WHERE c.id = i.callback_id
    RETURNING c.id
),
woken AS (
    SELECT pg_notify('callboard_deliveries', '') WHERE EXISTS (SELECT 1 FROM delivery WHERE lease_until IS NULL)
)
SELECT job_id, NULL::text AS delivery_id, NULL::text AS event_id, NULL::subscriptions AS subscription,
       (SELECT count(*) FROM job) AS jobs, (SELECT count(*) FROM callback) AS callbacks,
       (SELECT count(*) FROM woken) AS woken
FROM transcript
UNION ALL
SELECT NULL, d.id, d.event_id, s, NULL, NULL, NULL
FROM delivery d JOIN subscriptions s ON s.id = d.subscription_id
WHERE d.lease_until IS NOT NULL
"""


#: the counter that migration 0003's triggers bump when a change to `subscriptions` can change
#: which of them an event goes to
SUBSCRIPTIONS_VERSION_KEY = "subscriptions_version"
SUBSCRIPTIONS_VERSION = "SELECT value FROM meta WHERE key = ?"


class ClaimedCallbacks(msgspec.Struct, frozen=True):
    """Claimed callbacks in arrival order, the jobs they name by id (missing ones left out), and
    the subscriptions' version as of the claim (None when there was nothing to claim)."""

    callbacks: list[Callback]
    jobs: dict[str, Job]
    subscriptions_version: str | None


_CLAIM_CALLBACKS = (
    "UPDATE callbacks SET lease_until = ?, attempts = attempts + 1 WHERE id IN ("
    " SELECT id FROM callbacks WHERE status = ? AND next_attempt_at <= ?"
    " AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at, id LIMIT ?{skip_locked}) RETURNING *"
)


def _arrival_order(rows: list[Any]) -> list[Callback]:
    """Claimed callbacks in arrival order (RETURNING has no order of its own)."""
    return sorted((_rows.callback(r) for r in rows), key=lambda c: (c.next_attempt_at, c.id))


def _results(batch: list[NewCallback], stored: set[str], known: set[str]) -> list[IngestResult | NewCallback]:
    """The outcome of each callback of a batch, or the callback itself when it needs explaining."""
    out: list[IngestResult | NewCallback] = []
    for c in batch:
        if c.id in stored:
            out.append(IngestResult(c.id))
        elif c.job_id and c.job_id not in known:
            out.append(IngestResult(c.id, unknown_job=True))
        else:
            out.append(c)  # not stored, job known (or none): a duplicate, or a job gone since
    return out


class CallbacksStore(StoreBase):
    _finishes: GroupCommit[Finish, Finished | Exception] | None = None

    async def write_callbacks(self, batch: list[NewCallback]) -> list[IngestResult]:
        """Store a batch in one transaction (the group-commit flush). Results are in batch order."""
        if self.db.dialect == "postgres":
            return await self._write_callbacks_pg(batch)
        async with self.db.transaction() as tx:
            known = await _known_jobs(tx, [c.job_id for c in batch])
            accepted = [c for c in batch if c.job_id is None or c.job_id in known]
            inserted = await tx.executemany(_INSERT, [_insert_row(c) for c in accepted]) if accepted else 0
            ids = [c.id for c in accepted]
            stored = set()
            if inserted == len(ids):  # the usual case: every accepted callback is new
                stored = set(ids)
            elif ids:  # some were duplicates (ON CONFLICT DO NOTHING): which ones
                stored = {
                    r["id"]
                    for r in await tx.fetch(f"SELECT id FROM callbacks WHERE id IN {placeholders(len(ids))}", *ids)
                }
            results = await _outcomes(tx, batch, stored, known)
            if stored:
                await self.db.notify(tx, "callbacks")
        return results

    async def _write_callbacks_pg(self, batch: list[NewCallback]) -> list[IngestResult]:
        columns = list(zip(*(_insert_row(c)[:11] for c in batch), strict=True))
        async with self.db.autocommit() as db:
            rows = await db.fetch(_PG_WRITE_CALLBACKS, *(list(col) for col in columns), CB_PENDING)
        stored = {r["id"] for r in rows if r["id"] is not None}
        if len(stored) == len(batch):  # the usual case: every callback is new, for a known job
            return [IngestResult(c.id) for c in batch]
        async with self.db.read() as db:  # which were refused for their job, which were duplicates
            known = await _known_jobs(db, [c.job_id for c in batch if c.id not in stored])
            return await _outcomes(db, batch, stored, known)

    async def claim_callbacks(self, *, now: float, lease: float, limit: int) -> list[Callback]:
        # one statement: no BEGIN/COMMIT around it on PostgreSQL; a lease: lost in a power
        # failure, the callback is claimed again after the restart
        async with self.db.autocommit(durable=False) as tx:
            claim = _CLAIM_CALLBACKS.format(skip_locked=self.db.skip_locked)
            rows = await tx.fetch(claim, now + lease, CB_PENDING, now, now, limit)
        return _arrival_order(rows)

    async def _claim_callback_batch_pg(self, *, now: float, lease: float, limit: int) -> ClaimedCallbacks:
        """`claim_callbacks` and, in the same statement, the jobs the callbacks name (each on the
        first row of its callbacks) and the subscriptions' version. One round trip instead of three."""
        async with self.db.autocommit(durable=False) as db:  # a lease
            rows = await db.fetch(
                f"WITH claimed AS ({_CLAIM_CALLBACKS.format(skip_locked=self.db.skip_locked)})"
                " SELECT c.*, CASE WHEN row_number() OVER (PARTITION BY c.job_id ORDER BY c.id) = 1 THEN j END AS job,"
                f" ({SUBSCRIPTIONS_VERSION}) AS subscriptions_version"
                " FROM claimed c LEFT JOIN jobs j ON j.id = c.job_id",
                now + lease,
                CB_PENDING,
                now,
                now,
                limit,
                SUBSCRIPTIONS_VERSION_KEY,
            )
        jobs = {r["job"]["id"]: _rows.job(r["job"]) for r in rows if r["job"] is not None}
        return ClaimedCallbacks(_arrival_order(rows), jobs, rows[0]["subscriptions_version"] if rows else None)

    async def retry_callback(self, callback_id: str, *, error: str, next_attempt_at: float) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE callbacks SET last_error = ?, next_attempt_at = ?, lease_until = NULL WHERE id = ?",
                error,
                next_attempt_at,
                callback_id,
            )

    async def settle_callback(self, callback_id: str, status: str, *, error: str | None = None) -> None:
        """Mark a callback `ignored` (acknowledged, nothing to do) or `failed` (cannot be processed)."""
        assert status in (CB_IGNORED, CB_FAILED, CB_DONE)
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE callbacks SET status = ?, last_error = ?, processed_at = ?, lease_until = NULL WHERE id = ?",
                status,
                error,
                time.time(),
                callback_id,
            )

    async def attach_job(self, callback_id: str, job_id: str) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE callbacks SET job_id = ? WHERE id = ?", job_id, callback_id)

    async def get_callback(self, callback_id: str) -> Callback | None:
        async with self.db.read() as db:
            rows = await db.fetch("SELECT * FROM callbacks WHERE id = ?", callback_id)
        return _rows.callback(rows[0]) if rows else None

    async def count_callbacks(self, status: str | None = None) -> int:
        clause, args = _rows.where({"status = ?": status})
        async with self.db.read() as db:
            rows = await db.fetch(f"SELECT COUNT(*) AS n FROM callbacks{clause}", *args)
        return int(rows[0]["n"])

    async def finish_job(self, finish: Finish) -> bool:
        """Transcript, event, one delivery per matching subscription, job state and the callback, at once.

        Returns False, writing nothing but the callback's state, when the job already has its event.
        """
        return (await self.finish(finish)).created

    async def finish(self, finish: Finish) -> Finished:
        """`finish_job`, saying also which deliveries were written leased (`Finish.lease_until`).

        Concurrent finishes share one transaction (group commit): one statement on PostgreSQL, each
        statement run once for the whole batch on SQLite.
        """
        if self._finishes is None:
            self._finishes = GroupCommit(self.write_finishes)
        result = await self._finishes.submit(finish)
        if isinstance(result, Exception):
            raise result
        return result

    async def write_finishes(self, batch: list[Finish]) -> list[Finished | Exception]:
        """Finish a batch of jobs in one transaction (the group-commit flush), in batch order.

        A batch naming one job twice, or failing as a whole, is written one finish at a time, so
        one that cannot be written fails by itself.
        """
        distinct = len({f.job_id for f in batch}) == len(batch)
        write = self._finish_jobs_pg if self.db.dialect == "postgres" else self._finish_jobs
        return await write_or_split(batch, write, together=distinct)

    async def _finish_jobs(self, batch: list[Finish]) -> list[Finished]:
        """The portable version of `_PG_FINISH_JOBS`: a batch of distinct jobs in one transaction,
        each statement run once for all of them (executemany), not once per job."""
        now = time.time()
        leased: dict[str, list[tuple[Delivery, Subscription]]] = {}
        async with self.db.transaction() as tx:
            job_ids = [f.job_id for f in batch]
            rows = await tx.fetch(
                f"SELECT job_id FROM transcripts WHERE job_id IN {placeholders(len(job_ids))}", *job_ids
            )
            finished = {r["job_id"] for r in rows}  # before this batch: only their callbacks change
            new = [f for f in batch if f.job_id not in finished]
            if new:
                await tx.executemany(
                    "INSERT INTO transcripts (id, job_id, status, body, created_at) VALUES (?, ?, ?, ?, ?)",
                    [(f.transcript_id, f.job_id, f.job_status, f.transcript_body, now) for f in new],
                )
                await tx.executemany(
                    "INSERT INTO events (id, type, job_id, transcript_id, provider, metadata, created_at, payload)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [_event_row(f.event) for f in new],
                )
                unleased, leased = await insert_deliveries(tx, new, now)
                await tx.executemany(
                    "UPDATE jobs SET status = ?, error = ?, completed_at = ?, updated_at = ?, reconcile_at = NULL"
                    " WHERE id = ?",
                    [
                        (f.job_status, _rows.dumps(f.error) if f.error is not None else None, now, now, f.job_id)
                        for f in new
                    ],
                )
                if unleased:
                    await self.db.notify(tx, "deliveries")
            settled = [
                (CB_IGNORED, now, "the job had already finished", f.callback_id)
                if f.job_id in finished
                else (CB_DONE, now, None, f.callback_id)
                for f in batch
                if f.callback_id is not None
            ]
            if settled:
                await tx.executemany(
                    "UPDATE callbacks SET status = ?, processed_at = ?, lease_until = NULL, last_error = ?"
                    " WHERE id = ?",
                    settled,
                )
        return [Finished(f.job_id not in finished, leased.get(f.event.id, [])) for f in batch]

    async def _finish_jobs_pg(self, batch: list[Finish]) -> list[Finished]:
        now = time.time()
        columns = list(zip(*(_finish_row(f) for f in batch), strict=True))
        deliveries = [
            (new_id("dlv", now), f.event.id, sid, f.lease_until) for f in batch for sid in f.subscription_ids
        ]
        delivery_columns = list(zip(*deliveries, strict=True)) if deliveries else [(), (), (), ()]
        async with self.db.autocommit() as db:
            rows = await db.fetch(
                _PG_FINISH_JOBS,
                *(list(column) for column in columns),
                now,
                *(list(column) for column in delivery_columns[:3]),
                DLV_PENDING,
                CB_DONE,
                CB_IGNORED,
                "the job had already finished",
                list(delivery_columns[3]),
            )
        inserted = {r["job_id"] for r in rows if r["job_id"] is not None}
        leased: dict[str, list[tuple[Delivery, Subscription]]] = {}
        for r in rows:
            if r["delivery_id"] is not None:
                delivery = new_delivery(r["delivery_id"], r["event_id"], r["subscription"]["id"], now)
                leased.setdefault(r["event_id"], []).append((delivery, _rows.subscription(r["subscription"])))
        return [Finished(f.job_id in inserted, leased.get(f.event.id, [])) for f in batch]


def _finish_row(f: Finish) -> tuple[object, ...]:
    """A finish's columns, in the order of `_PG_FINISH_JOBS`' input."""
    error = _rows.dumps(f.error) if f.error is not None else None
    return (f.transcript_id, f.job_id, f.job_status, f.transcript_body, *_event_row(f.event), error, f.callback_id)


def new_delivery(delivery_id: str, event_id: str, subscription_id: str, now: float) -> Delivery:
    """A delivery as `insert_deliveries` writes it: pending, due now, never attempted."""
    return Delivery(delivery_id, event_id, subscription_id, DLV_PENDING, 0, 0, now, None, None, now, now)


async def insert_deliveries(
    tx: Executor, finishes: list[Finish], now: float
) -> tuple[bool, dict[str, list[tuple[Delivery, Subscription]]]]:
    """For each finish, one pending delivery per enabled subscription of its `subscription_ids`
    (an existing (event, subscription) pair is kept), leased until its `lease_until` when set.
    Returns whether any was written unleased (for any worker to claim) and, by event id, those
    written leased, with their subscriptions."""
    wanted = sorted({sid for f in finishes for sid in f.subscription_ids})
    if not wanted:
        return False, {}
    leasing = any(f.lease_until is not None for f in finishes if f.subscription_ids)
    rows = await tx.fetch(
        f"SELECT {'*' if leasing else 'id'} FROM subscriptions WHERE enabled = 1 AND id IN {placeholders(len(wanted))}",
        *wanted,
    )
    enabled = {r["id"]: r for r in rows}
    if not enabled:
        return False, {}
    written = [
        (new_delivery(new_id("dlv", now), f.event.id, sid, now), f.lease_until)
        for f in finishes
        for sid in f.subscription_ids
        if sid in enabled
    ]
    await tx.executemany(
        "INSERT INTO deliveries (id, event_id, subscription_id, status, attempts, schedule_index,"
        " next_attempt_at, lease_until, created_at, updated_at) VALUES (?, ?, ?, ?, 0, 0, ?, ?, ?, ?)"
        " ON CONFLICT (event_id, subscription_id) DO NOTHING",
        [(d.id, d.event_id, d.subscription_id, DLV_PENDING, now, lease, now, now) for d, lease in written],
    )
    subscriptions = {sid: _rows.subscription(row) for sid, row in enabled.items()} if leasing else {}
    leased: dict[str, list[tuple[Delivery, Subscription]]] = {}
    for d, lease in written:
        if lease is not None:
            leased.setdefault(d.event_id, []).append((d, subscriptions[d.subscription_id]))
    return any(lease is None for _, lease in written), leased


async def _outcomes(db: Executor, batch: list[NewCallback], stored: set[str], known: set[str]) -> list[IngestResult]:
    """Each callback's outcome in batch order: stored, refused for its job, or (read back) a duplicate."""
    return [r if isinstance(r, IngestResult) else await _explain(db, r) for r in _results(batch, stored, known)]


async def _known_jobs(db: Executor, job_ids: list[str | None]) -> set[str]:
    """Which of these jobs exist (None, a provider-level callback's, names none)."""
    ids = sorted({job_id for job_id in job_ids if job_id})
    if not ids:
        return set()
    return {r["id"] for r in await db.fetch(f"SELECT id FROM jobs WHERE id IN {placeholders(len(ids))}", *ids)}


async def _explain(tx: Executor, c: NewCallback) -> IngestResult:
    """Why a callback of the batch was not inserted: a duplicate, or a token for an unknown job."""
    rows: list[Any] = await tx.fetch(
        "SELECT id FROM callbacks WHERE provider = ? AND dedupe_key = ?", c.provider, c.dedupe_key
    )
    if rows:
        return IngestResult(rows[0]["id"], duplicate=True)
    return IngestResult(c.id, unknown_job=True)
