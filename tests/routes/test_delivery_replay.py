"""The replay engine streams: `routes.replay.plan` reads events a batch at a time and yields at most
`BATCH` (500) pairs at once, whatever the number of events and subscriptions, so a replay of a
large backlog never holds it all in memory.

The events are written through the store's own `finish_job` into a real SQLite file, once for the
module (it takes a few seconds at `synchronous=FULL`); the tests only read it, except where they
work on a copy.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from routes import replay
from routes.replay import BATCH, ReplayError, ReplayRequest
from routes.signing import new_secret
from storage.ids import new_id
from storage.records import Event, Finish
from storage.store import Store, open_store

EVENTS = 5_001  # ten full batches and one of a single event
START = 1_790_000_000.0
PAYLOAD = b'{"type":"transcript.completed","timestamp":"2026-09-21T10:00:00Z","data":{}}'


async def _fill(url: str) -> tuple[str, str]:
    async with open_store(url) as store:
        for n in range(EVENTS):
            created = START + n  # one a second: windows select exact counts
            event = Event(
                id=new_id("evt", created), type="transcript.completed" if n % 10 else "transcript.failed",
                job_id=new_id("job", created), transcript_id=new_id("tr", created), provider="generic",
                metadata={"n": n}, created_at=created, payload=PAYLOAD,
            )  # fmt: skip
            await store.finish_job(
                Finish(
                    callback_id=None,
                    job_id=event.job_id,
                    job_status="completed",
                    error=None,
                    transcript_id=event.transcript_id,
                    transcript_body=b"{}",
                    event=event,
                )  # fmt: skip
            )
        subs = []
        for _ in range(2):  # created after the events: none of them was ever attempted for these
            sub = await store.create_subscription(
                new_id("sub"), url="https://example.com/hook", secret=new_secret(), event_types=[], filter={},
                description=None,
            )  # fmt: skip
            subs.append(sub.id)
    return subs[0], subs[1]


@pytest.fixture(scope="module")
def backlog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A SQLite file with EVENTS events and two subscriptions; returns (path, sub id, sub id)."""
    path = tmp_path_factory.mktemp("backlog") / "backlog.db"
    first, second = asyncio.run(_fill(f"sqlite:///{path}"))
    return path, first, second


@pytest.fixture
async def store(backlog: tuple[Path, str, str]) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{backlog[0]}") as s:
        yield s


async def _batches(store: Store, req: ReplayRequest) -> list[list[tuple[str, str]]]:
    return [batch async for batch in replay.plan(store, req)]


async def test_plan_yields_every_pair_in_batches_of_at_most_500(
    store: Store, backlog: tuple[Path, str, str]
) -> None:
    _, first, second = backlog
    batches = await _batches(store, ReplayRequest(status="all"))
    sizes = [len(b) for b in batches]
    assert max(sizes) <= BATCH == 500
    assert sum(sizes) == 2 * EVENTS
    assert len(batches) >= 2 * EVENTS // BATCH
    pairs = [pair for batch in batches for pair in batch]
    assert len(set(pairs)) == len(pairs)
    assert {s for _, s in pairs} == {first, second}
    events = [e for e, s in pairs if s == first]
    assert events == sorted(events), "oldest first"


async def test_plan_for_one_subscription_and_never_attempted(
    store: Store, backlog: tuple[Path, str, str]
) -> None:
    _, first, _ = backlog
    batches = await _batches(store, ReplayRequest(subscription_id=first, status="never-attempted"))
    assert [len(b) for b in batches] == [BATCH] * (EVENTS // BATCH) + [EVENTS % BATCH]
    assert {s for b in batches for _, s in b} == {first}
    assert await _batches(store, ReplayRequest(subscription_id=first, status="failed")) == []


async def test_plan_filters_by_window_and_type(store: Store, backlog: tuple[Path, str, str]) -> None:
    _, first, _ = backlog
    window = ReplayRequest(subscription_id=first, status="all", since=START + 1000, until=START + 2200)
    assert sum(len(b) for b in await _batches(store, window)) == 1200
    failed = ReplayRequest(subscription_id=first, status="all", type="transcript.failed")
    batches = await _batches(store, failed)
    assert sum(len(b) for b in batches) == len(range(0, EVENTS, 10))
    assert max(len(b) for b in batches) <= BATCH


async def test_plan_by_event_ids_streams_too(store: Store, backlog: tuple[Path, str, str]) -> None:
    _, first, second = backlog
    ids = [e.id for e in (await store.list_events(replay.EventFilter(), limit=500)).items]
    ids += [e.id for e in (await store.list_events(replay.EventFilter(), cursor=ids[-1], limit=500)).items]
    batches = await _batches(store, ReplayRequest(event_ids=ids, status="all"))
    assert max(len(b) for b in batches) <= BATCH
    assert sum(len(b) for b in batches) == 2 * 1000
    with pytest.raises(ReplayError, match="evt_nosuch"):
        await _batches(store, ReplayRequest(event_ids=[ids[0], "evt_nosuch"]))
    with pytest.raises(ReplayError, match="status"):
        await _batches(store, ReplayRequest(status="everything"))
    with pytest.raises(ReplayError, match="sub_nosuch"):
        await _batches(store, ReplayRequest(subscription_id="sub_nosuch"))


async def test_enqueue_makes_the_backlog_due_in_batches(
    backlog: tuple[Path, str, str], tmp_path: Path
) -> None:
    """On a copy: enqueuing 2 × EVENTS deliveries goes a batch at a time and each pair gets one
    delivery; a second run of `never-attempted` finds nothing left."""
    copy = tmp_path / "copy.db"
    shutil.copy(backlog[0], copy)
    async with open_store(f"sqlite:///{copy}") as store:
        started = time.time()
        sizes = [len(ids) async for ids in replay.enqueue(store, ReplayRequest(status="never-attempted"))]
        assert max(sizes) <= BATCH and sum(sizes) == 2 * EVENTS
        due = await store.claim_deliveries(now=time.time(), lease=30, limit=20_000, per_subscription=20_000)
        assert len(due) == 2 * EVENTS
        assert all(
            d.next_attempt_at is not None and started - 1 <= d.next_attempt_at <= time.time() for d in due
        )
        assert await _batches(store, ReplayRequest(status="never-attempted")) == []
