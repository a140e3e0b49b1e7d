"""A delivery attempt's record, row by row, on both backends.

On PostgreSQL a lone `record_attempt` is one statement (CTEs); otherwise it is the portable version:
concurrent records are written as one batch in one transaction, each statement run over all of
them (on SQLite a lone record is a batch of one). The rows written (attempt, delivery, subscription health,
disabling) and the status returned must be the same, which is what these tests pin down.
"""

from __future__ import annotations

import asyncio

import msgspec

from storage.deliveries import Recorded
from storage.ids import new_id
from storage.records import DLV_FAILED, DLV_PENDING, DLV_SUCCEEDED, Attempt, Delivery, Subscription
from storage.store import Store
from tests.storage.test_hot_path_writes import NOW, finish, new_job, subscription


async def claimed_delivery(store: Store) -> tuple[Delivery, str]:
    job_id = await new_job(store)
    sub_id = await subscription(store)
    done = finish(job_id, None, [sub_id])
    assert await store.finish_job(done)
    [delivery] = await store.claim_deliveries(now=NOW + 10_000, lease=60, limit=10, per_subscription=10)
    assert await lease_of(store, delivery.id) == NOW + 10_060
    return delivery, sub_id


async def lease_of(store: Store, delivery_id: str) -> float | None:
    async with store.db.read() as db:
        rows = await db.fetch("SELECT lease_until FROM deliveries WHERE id = ?", delivery_id)
    return rows[0]["lease_until"]


def attempt(delivery: Delivery, at: float, *, code: int | None = 200, error: str | None = None) -> Attempt:
    return Attempt(
        id=new_id("att", at),
        delivery_id=delivery.id,
        attempted_at=at,
        status_code=code,
        latency_ms=12.5,
        error=error,
        response_excerpt="ok" if code == 200 else None,
        trigger="worker",
    )


async def sub_of(store: Store, sub_id: str) -> Subscription:
    sub = await store.get_subscription(sub_id)
    assert sub is not None
    return sub


async def test_a_failure_then_a_success_write_the_attempts_the_delivery_and_the_health(store: Store) -> None:
    delivery, sub_id = await claimed_delivery(store)
    t1, t2, t3 = NOW + 100, NOW + 200, NOW + 300
    first = attempt(delivery, t1, code=503, error="HTTP 503")
    assert await store.record_attempt(delivery, first, status=DLV_PENDING, next_attempt_at=t1 + 5) == DLV_PENDING
    got = await store.get_delivery(delivery.id)
    assert got is not None
    d, attempts = got
    assert (d.status, d.attempts, d.schedule_index, d.next_attempt_at) == (DLV_PENDING, 1, 1, t1 + 5)
    assert await lease_of(store, d.id) is None
    assert (d.last_status_code, d.last_error) == (503, "HTTP 503")
    assert attempts == [first]
    assert (await sub_of(store, sub_id)).failing_since == t1

    second = attempt(d, t2, code=None, error="timed out after 10 s")
    assert await store.record_attempt(d, second, status=DLV_PENDING, next_attempt_at=t2 + 30) == DLV_PENDING
    sub = await sub_of(store, sub_id)
    assert sub.failing_since == t1 and sub.enabled  # failing since the first failure, not the latest

    third = attempt(d, t3)
    assert await store.record_attempt(d, third, status=DLV_SUCCEEDED, next_attempt_at=None) == DLV_SUCCEEDED
    got = await store.get_delivery(delivery.id)
    assert got is not None
    d, attempts = got
    assert (d.status, d.attempts, d.schedule_index, d.next_attempt_at) == (DLV_SUCCEEDED, 3, 3, None)
    assert (d.last_status_code, d.last_error) == (200, None)
    assert attempts == [first, second, third]
    sub = await sub_of(store, sub_id)
    assert sub.failing_since is None and sub.enabled and sub.disabled_at is None


async def test_gone_fails_the_delivery_and_disables_the_subscription_once(store: Store) -> None:
    delivery, sub_id = await claimed_delivery(store)
    before = await sub_of(store, sub_id)
    t1, t2 = NOW + 100, NOW + 200
    reason = "the endpoint answered 410 Gone"
    gone = attempt(delivery, t1, code=410, error="HTTP 410")
    assert (
        await store.record_attempt(delivery, gone, status=DLV_FAILED, next_attempt_at=None, disable_reason=reason)
        == DLV_FAILED
    )
    got = await store.get_delivery(delivery.id)
    assert got is not None
    d, attempts = got
    assert (d.status, d.attempts, d.next_attempt_at, d.last_status_code) == (DLV_FAILED, 1, None, 410)
    assert attempts == [gone]
    sub = await sub_of(store, sub_id)
    assert (sub.enabled, sub.disabled_reason, sub.disabled_at, sub.updated_at, sub.failing_since) == (
        False, reason, t1, t1, t1,
    )  # fmt: skip
    assert sub.created_at == before.created_at

    # a second 410 (an attempt already in flight) changes nothing on the disabled subscription
    again = attempt(d, t2, code=410, error="HTTP 410")
    await store.record_attempt(d, again, status=DLV_FAILED, next_attempt_at=None, disable_reason="other")
    assert await sub_of(store, sub_id) == sub


async def test_an_attempt_at_a_delivery_cancelled_meanwhile_leaves_it_cancelled(store: Store) -> None:
    delivery, sub_id = await claimed_delivery(store)
    assert await store.delete_subscription(sub_id)
    failed = attempt(delivery, NOW + 100, code=500, error="HTTP 500")
    assert await store.record_attempt(delivery, failed, status=DLV_PENDING, next_attempt_at=NOW + 105) == "cancelled"
    got = await store.get_delivery(delivery.id)
    assert got is not None
    d, attempts = got
    assert (d.status, d.next_attempt_at, d.attempts, d.schedule_index) == ("cancelled", None, 1, 1)
    assert await lease_of(store, d.id) is None
    assert (d.last_status_code, d.last_error) == (500, "HTTP 500")
    assert attempts == [failed]
    assert await store.get_subscription(sub_id) is None


async def test_a_final_outcome_overrides_cancelled_and_a_missing_delivery_returns_the_outcome(store: Store) -> None:
    delivery, sub_id = await claimed_delivery(store)
    assert await store.delete_subscription(sub_id)
    ok = attempt(delivery, NOW + 100)
    assert await store.record_attempt(delivery, ok, status=DLV_SUCCEEDED, next_attempt_at=None) == DLV_SUCCEEDED

    missing = msgspec.structs.replace(delivery, id=new_id("dlv"))
    late = msgspec.structs.replace(attempt(missing, NOW + 200), delivery_id=missing.id)
    assert await store.record_attempt(missing, late, status=DLV_PENDING, next_attempt_at=NOW + 205) == DLV_PENDING
    assert await store.get_delivery(missing.id) is None
    async with store.db.read() as db:
        rows = await db.fetch("SELECT delivery_id FROM attempts WHERE id = ?", late.id)
    assert [r["delivery_id"] for r in rows] == [missing.id]


async def world(store: Store, jobs: int = 3) -> dict[str, list[Delivery]]:
    """Two subscriptions with one delivery each per job, claimed: {subscription id: deliveries by job}."""
    subs = [await subscription(store), await subscription(store)]
    events = []
    for _ in range(jobs):
        done = finish(await new_job(store), None, subs)
        assert await store.finish_job(done)
        events.append(done.event.id)
    claimed = await store.claim_deliveries(now=NOW + 10_000, lease=60, limit=100, per_subscription=100, exclude=())
    by_key = {(d.subscription_id, d.event_id): d for d in claimed}
    return {sid: [by_key[(sid, eid)] for eid in events] for sid in subs}


def outcomes(deliveries: dict[str, list[Delivery]]) -> list[tuple[Delivery, Attempt, str, float | None, str | None]]:
    """For the first subscription: failure, success, failure (failing since the last one); for the
    second: 410 (disabled), failure, success. Interleaved, as concurrent attempts finish."""
    (a1, a2, a3), (b1, b2, b3) = deliveries.values()
    t = [NOW + 100 * i for i in range(1, 7)]
    return [
        (a1, attempt(a1, t[0], code=503, error="HTTP 503"), DLV_PENDING, t[0] + 5, None),
        (b1, attempt(b1, t[1], code=410, error="HTTP 410"), DLV_FAILED, None, "the endpoint answered 410 Gone"),
        (a2, attempt(a2, t[2]), DLV_SUCCEEDED, None, None),
        (b2, attempt(b2, t[3], code=None, error="timed out after 10 s"), DLV_PENDING, t[3] + 30, None),
        (a3, attempt(a3, t[4], code=500, error="HTTP 500"), DLV_PENDING, t[4] + 5, None),
        (b3, attempt(b3, t[5]), DLV_SUCCEEDED, None, None),
    ]


async def state(store: Store, deliveries: dict[str, list[Delivery]]) -> list[object]:
    """Every row the records wrote, without ids: deliveries, their attempts, the subscriptions."""
    rows: list[object] = []
    for sid, ds in deliveries.items():
        sub = await sub_of(store, sid)
        rows.append((sub.enabled, sub.failing_since, sub.disabled_reason, sub.disabled_at))
        for d in ds:
            got = await store.get_delivery(d.id)
            assert got is not None
            stored, attempts = got
            rows.append(
                (stored.status, stored.attempts, stored.schedule_index, stored.next_attempt_at,
                 stored.last_status_code, stored.last_error, await lease_of(store, d.id),
                 [msgspec.structs.replace(a, id="", delivery_id="") for a in attempts])
            )  # fmt: skip
    return rows


async def test_a_batch_of_attempts_writes_what_recording_them_one_at_a_time_writes(store: Store) -> None:
    """Concurrent attempts are recorded together (group commit): the same rows, the same answers,
    including a subscription that fails, recovers and fails again within one batch."""
    alone, together = await world(store), await world(store)
    answers_alone = [
        await store.record_attempt(d, a, status=s, next_attempt_at=n, disable_reason=r)
        for d, a, s, n, r in outcomes(alone)
    ]
    answers_together = await store.write_attempts([Recorded(*o) for o in outcomes(together)])
    assert answers_together == answers_alone == [DLV_PENDING, DLV_FAILED, DLV_SUCCEEDED] + [DLV_PENDING] * 2 + [
        DLV_SUCCEEDED
    ]
    assert await state(store, together) == await state(store, alone)
    first, second = (await state(store, together))[0], (await state(store, together))[4]
    assert first == (True, NOW + 500, None, None)  # failing since the failure after the success
    assert second == (False, None, "the endpoint answered 410 Gone", NOW + 200)


async def test_concurrent_records_share_a_batch_and_each_gets_its_own_answer(store: Store) -> None:
    deliveries = await world(store)
    answers = await asyncio.gather(
        *(
            store.record_attempt(d, a, status=s, next_attempt_at=n, disable_reason=r)
            for d, a, s, n, r in outcomes(deliveries)
        )
    )
    assert list(answers) == [DLV_PENDING, DLV_FAILED, DLV_SUCCEEDED, DLV_PENDING, DLV_PENDING, DLV_SUCCEEDED]
    assert (await state(store, deliveries))[0] == (True, NOW + 500, None, None)


async def test_a_batch_answers_each_status_as_stored_when_some_deliveries_were_cancelled(store: Store) -> None:
    """Within one batch, a retry of a delivery cancelled meanwhile is answered (and left)
    `cancelled`, beside a retry and a success of live ones and a success of a cancelled one."""
    (a1, a2, _), (b1, b2, _) = (await world(store)).values()
    assert await store.delete_subscription(b1.subscription_id)
    t = NOW + 100
    records = [
        Recorded(a1, attempt(a1, t, code=500, error="HTTP 500"), DLV_PENDING, t + 5, None),
        Recorded(b1, attempt(b1, t + 1, code=500, error="HTTP 500"), DLV_PENDING, t + 6, None),
        Recorded(a2, attempt(a2, t + 2), DLV_SUCCEEDED, None, None),
        Recorded(b2, attempt(b2, t + 3), DLV_SUCCEEDED, None, None),
    ]
    answers = await store.write_attempts(records)
    assert answers == [DLV_PENDING, "cancelled", DLV_SUCCEEDED, DLV_SUCCEEDED]
    for r, answer in zip(records, answers, strict=True):
        got = await store.get_delivery(r.delivery.id)
        assert got is not None and got[0].status == answer and len(got[1]) == 1


async def test_an_attempt_that_cannot_be_written_fails_alone(store: Store) -> None:
    """One bad record (an attempt id already taken) does not take the rest of its batch down."""
    deliveries = await world(store)
    records = [Recorded(*o) for o in outcomes(deliveries)]
    taken = msgspec.structs.replace(records[2].attempt, id=records[1].attempt.id)
    records[2] = msgspec.structs.replace(records[2], attempt=taken)
    answers = await store.write_attempts(records)
    assert isinstance(answers[2], Exception)
    assert answers[:2] + answers[3:] == [DLV_PENDING, DLV_FAILED, DLV_PENDING, DLV_PENDING, DLV_SUCCEEDED]
    untouched = await store.get_delivery(records[2].delivery.id)
    assert untouched is not None and untouched[0].attempts == 0 and untouched[1] == []
    got = await store.get_delivery(records[5].delivery.id)
    assert got is not None and got[0].status == DLV_SUCCEEDED and len(got[1]) == 1


async def test_a_batch_of_failures_marks_the_subscription_failing_since_the_first_unless_it_was(
    store: Store,
) -> None:
    (a1, a2, a3), (b1, b2, b3) = (await world(store)).values()
    t = NOW + 100
    await store.record_attempt(b1, attempt(b1, t, code=500, error="HTTP 500"), status=DLV_PENDING, next_attempt_at=t)
    failures = [
        Recorded(d, attempt(d, t + 10 * i, code=500, error="HTTP 500"), DLV_PENDING, t + 60, None)
        for i, d in enumerate((a1, b2, a2, b3), start=1)
    ]
    assert await store.write_attempts(failures) == [DLV_PENDING] * 4
    assert (await sub_of(store, a1.subscription_id)).failing_since == t + 10  # the first of the batch
    assert (await sub_of(store, b1.subscription_id)).failing_since == t  # failing already: kept
