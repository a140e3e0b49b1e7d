"""Databases for a run: a fresh one per scenario, filled through the Store API.

SQLite is a file in the run's work directory; PostgreSQL is a new database on the server at
`--postgres-url` (default: the test server, 127.0.0.1:5432/test), dropped afterwards. While a
PostgreSQL database is in use, the tables autovacuum would analyze are analyzed every
`ANALYZE_EVERY` seconds when the server runs with autovacuum off (as this machine's does): see
`autoanalyze`.

Jobs are what a submission leaves behind (status `submitted`, the provider's id recorded). The
first is made with `Store.create_job` and `Store.mark_submitted`; the rest, thousands at a time,
with the same insert in one transaction of the store's backend, because one transaction per job
would make setting up 100,000 jobs take longer than the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import asyncpg

from routes.signing import new_secret, secret_key
from storage.ids import new_id
from storage.records import JOB_SUBMITTED
from storage.store import Store, open_store

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
CHUNK = 5000
ANALYZE_EVERY = 5.0  # seconds

_JOB_INSERT = (
    "INSERT INTO jobs (id, provider, provider_job_id, status, audio_url, recording_id, options, metadata,"
    " created_at, updated_at, reconcile_at) VALUES (?, ?, ?, ?, ?, NULL, '{}', ?, ?, ?, ?)"
)


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextlib.asynccontextmanager
async def fresh_database(
    backend: str,
    workdir: Path,
    postgres_url: str,
    label: str,
    *,
    analyze_every: float = ANALYZE_EVERY,
    on_analyzer_error: Callable[[str], None] | None = None,
) -> AsyncIterator[str]:
    """A new, empty database for one scenario (its URL), removed afterwards. On PostgreSQL,
    `autoanalyze` runs while it is in use; if that stops on an error, `on_analyzer_error` (or,
    without one, standard error) is told, since figures taken without analyses are not what a
    production server would show."""
    if backend == "sqlite":
        path = workdir / f"{label}-{uuid.uuid4().hex[:8]}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"cb_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_url, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(postgres_url, name)
    analyzer = asyncio.ensure_future(autoanalyze(url, analyze_every))
    try:
        yield url
    finally:
        analyzer.cancel()
        try:
            await analyzer
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            message = (
                f"the analyzer of database {name} stopped: {type(exc).__name__}: {exc}; what was measured"
                " on it afterwards ran without fresh statistics"
            )
            if on_analyzer_error is None:
                print(message, file=sys.stderr, flush=True)
            else:
                on_analyzer_error(message)
        admin = await asyncpg.connect(postgres_url, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


#: the tables autovacuum would analyze now: changed (rows inserted, updated or deleted) since their
#: last analysis by more than `autovacuum_analyze_threshold` + `autovacuum_analyze_scale_factor`
#: of their rows, with the server's settings of those two
_DUE_FOR_ANALYZE = """
SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.relname)
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8
      + current_setting('autovacuum_analyze_scale_factor')::float8 * greatest(c.reltuples, 0)
"""


async def autoanalyze(url: str, every: float) -> None:
    """Every `every` seconds, `ANALYZE` the tables autovacuum would, if the server's autovacuum is off.

    A production server's autovacuum analyzes a table once enough of it changed, which also
    replaces the plans prepared statements made before (asyncpg caches one per statement and
    connection). Without it, the benchmark's statements kept the sequential scans planned on
    empty tables, and each round on the same database was slower than the one before (end to
    end's three windows on 2026-12-04: p50 24, 36, 85 ms; the PostgreSQL server's CPU per
    callback 1,930 µs). The rule is autovacuum's; the interval is shorter than its minute,
    because a benchmark grows a database in seconds. The analyses' CPU is part of the PostgreSQL
    server's figures."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        if await conn.fetchval("SHOW autovacuum") == "on":
            return
        while True:
            await asyncio.sleep(every)
            tables = [row[0] for row in await conn.fetch(_DUE_FOR_ANALYZE)]
            if tables:
                await conn.execute(f"ANALYZE {', '.join(tables)}")
    finally:
        await conn.close()


def transcript_id(n: int, run: str) -> str:
    return f"transcript_{run}_{n:07d}"


async def create_jobs(store: Store, n: int, *, run: str, metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`n` submitted generic jobs; returns (job id, provider job id = transcript id) pairs."""
    now = time.time()
    jobs = [(new_id("job", now), transcript_id(i, run)) for i in range(n)]
    if not jobs:
        return jobs
    first_id, first_tid = jobs[0]
    await store.create_job(
        first_id,
        "generic",
        audio_url="https://example.com/a.wav",
        recording_id=None,
        options={},
        metadata=metadata,
        now=now,
    )
    await store.mark_submitted(first_id, first_tid, reconcile_at=now + 3600)
    meta = _dumps(metadata)
    rows = [
        (jid, "generic", tid, JOB_SUBMITTED, "https://example.com/a.wav", meta, now, now, now + 3600)
        for jid, tid in jobs[1:]
    ]
    for start in range(0, len(rows), CHUNK):
        async with store.db.transaction() as tx:
            await tx.executemany(_JOB_INSERT, rows[start : start + CHUNK])
    return jobs


def _dumps(value: Mapping[str, Any]) -> str:
    import msgspec

    return msgspec.json.encode(value).decode()


class _AllSubscriptions:
    """Stands in for `routes.fanout.Fanout` when building events: every subscription matches."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    def matching(self, *args: object) -> list[str]:
        return list(self.ids)


async def create_events(store: Store, jobs: list[tuple[str, str]], subscription_ids: list[str], body: bytes,
                        *, concurrency: int = 64) -> None:  # fmt: skip
    """Finish `jobs` as the processor would (`build_finish` + `Store.finish_job`): one event each,
    with one pending delivery per subscription. `body` is a callback body; its transcript id is
    replaced by each job's."""
    import asyncio

    import msgspec

    from receiver.processor import build_finish
    from receiver.providers.generic import normalize, transcript_of

    fanout = _AllSubscriptions(subscription_ids)
    doc = transcript_of(msgspec.json.decode(body))
    todo = list(jobs)

    async def worker() -> None:
        while todo:
            job_id, tid = todo.pop()
            job = await store.get_job(job_id)
            assert job is not None
            transcript = normalize({**doc, "id": tid})
            assert transcript is not None
            await store.finish_job(build_finish(fanout, job, transcript, None, time.time()))  # type: ignore[arg-type]

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def create_subscriptions(
    store: Store, urls: list[str], *, event_types: list[str] | None = None
) -> list[tuple[str, bytes]]:
    """One subscription per URL (every event type, no filter); returns their ids and HMAC keys."""
    keys = []
    for url in urls:
        secret = new_secret()
        sub_id = new_id("sub")
        await store.create_subscription(
            sub_id,
            url=url,
            secret=secret,
            event_types=event_types or ["transcript.completed"],
            filter={},
            description="bench",
        )
        keys.append((sub_id, secret_key(secret)))
    return keys


@contextlib.asynccontextmanager
async def store_for(url: str) -> AsyncIterator[Store]:
    async with open_store(url) as store:
        yield store
