"""The subscriptions version (migration 0003), on both backends.

The processor re-reads the subscriptions only when the version read with its claim moved, so
every change that can change where an event goes must move it, whoever makes it (the API, the
CLI, the delivery worker disabling an endpoint); and the constant health updates of delivery
attempts must not, or the cache would be re-read all the time.
"""

from __future__ import annotations

from storage.deliveries import Recorded
from storage.records import DLV_FAILED, DLV_PENDING
from storage.store import Store
from tests.storage.test_hot_path_writes import NOW, finish, new_job, subscription
from tests.storage.test_record_attempt import attempt


async def test_changes_that_decide_where_events_go_move_the_version(store: Store) -> None:
    seen = [await store.subscriptions_version()]

    async def moved() -> bool:
        seen.append(await store.subscriptions_version())
        return seen[-1] != seen[-2]

    sub_id = await subscription(store)
    assert await moved()
    await store.update_subscription(sub_id, event_types=["transcript.failed"])
    assert await moved()
    await store.update_subscription(sub_id, filter={"metadata.team": "support"})
    assert await moved()
    await store.update_subscription(sub_id, enabled=False)
    assert await moved()
    await store.update_subscription(sub_id, enabled=True)
    assert await moved()
    await store.update_subscription(sub_id, description="the support team's CRM", url="https://example.com/other")
    assert not await moved()
    await store.update_subscription(sub_id, enabled=True)  # no change
    assert not await moved()
    assert await store.delete_subscription(sub_id)
    assert await moved()
    assert None not in seen and len(set(seen)) == 7


async def test_attempts_move_it_only_when_they_disable_an_endpoint(store: Store) -> None:
    a, b = await subscription(store), await subscription(store)
    done = finish(await new_job(store), None, [a, b])
    assert await store.finish_job(done)
    first, second = await store.claim_deliveries(now=NOW + 10_000, lease=60, limit=10, per_subscription=10)
    before = await store.subscriptions_version()
    failing = Recorded(first, attempt(first, NOW + 1, code=500, error="HTTP 500"), DLV_PENDING, NOW + 60, None)
    assert await store.write_attempts([failing]) == [DLV_PENDING]  # a health update only
    assert await store.subscriptions_version() == before
    gone = Recorded(second, attempt(second, NOW + 2, code=410, error="HTTP 410"), DLV_FAILED, None, "410 Gone")
    assert await store.write_attempts([gone]) == [DLV_FAILED]
    assert await store.subscriptions_version() != before
    disabled = await store.get_subscription(second.subscription_id)
    assert disabled is not None and not disabled.enabled


async def test_disabling_failing_subscriptions_moves_it(store: Store) -> None:
    sub_id = await subscription(store)
    await store.update_subscription(sub_id, failing_since=NOW - 10 * 86400)
    before = await store.subscriptions_version()
    assert await store.disable_failing_subscriptions(now=NOW, window=5 * 86400) == [sub_id]
    assert await store.subscriptions_version() != before
