"""The delivery worker's pieces: signing keys and headers during a rotation, one attempt against real
subscriber servers on a real store (status → delivery state), and the loop (concurrency limit,
timely retries, heartbeat)."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import standardwebhooks
import svix.webhooks
from msgspec.structs import replace

from routes.fanout import Fanout
from routes.retry import RetryPolicy
from routes.signing import new_secret, secret_key
from routes.ssrf import make_connector
from routes.subscriptions import rotate_secret
from routes.worker import (
    EXCERPT_BYTES,
    DeliveryWorker,
    WorkerConfig,
    delivery_headers,
    signing_keys,
    worker_alive,
)
from storage.ids import new_id
from storage.records import Delivery, Event, Finish, Subscription
from storage.store import Store
from tests.subscribers import Reply, Subscriber, closed_url, running_subscriber

NOW = 1_795_000_000.0
PAYLOAD = b'{"type":"transcript.completed","timestamp":"2026-11-21T10:02:11Z","data":{"id":"tr_1"}}'


def _subscription(**fields: Any) -> Subscription:
    base = Subscription(
        id="sub_1", url="http://127.0.0.1:9/hook", description=None, event_types=[], filter={}, enabled=True,
        disabled_reason=None, disabled_at=None, secret=new_secret(), previous_secret=None,
        previous_secret_expires_at=None, failing_since=None, created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    return replace(base, **fields)


def _event(event_id: str = "evt_1", created_at: float = NOW) -> Event:
    job = new_id("job")
    return Event(
        id=event_id, type="transcript.completed", job_id=job, transcript_id=new_id("tr"), provider="generic",
        metadata={}, created_at=created_at, payload=PAYLOAD,
    )  # fmt: skip


# -- signing_keys and delivery_headers -----------------------------------------------------------------


def test_signing_keys_without_rotation_is_the_current_secret() -> None:
    sub = _subscription()
    assert signing_keys(sub, NOW) == [secret_key(sub.secret)]


@pytest.mark.parametrize(
    ("expires_in", "both"),
    [
        pytest.param(3600, True, id="within-grace"),
        pytest.param(0.001, True, id="last-moment"),
        pytest.param(0, False, id="at-expiry"),
        pytest.param(-1, False, id="expired"),
    ],
)
def test_signing_keys_during_rotation(expires_in: float, both: bool) -> None:
    old, new = new_secret(), new_secret()
    sub = _subscription(secret=new, previous_secret=old, previous_secret_expires_at=NOW + expires_in)
    keys = signing_keys(sub, NOW)
    assert keys == ([secret_key(new), secret_key(old)] if both else [secret_key(new)])


def test_signing_keys_ignore_an_expiry_without_a_previous_secret() -> None:
    sub = _subscription(previous_secret=None, previous_secret_expires_at=NOW + 3600)
    assert signing_keys(sub, NOW) == [secret_key(sub.secret)]


def test_delivery_headers_during_rotation_verify_with_both_secrets_and_libraries() -> None:
    old, new = new_secret(), new_secret()
    now = time.time()
    sub = _subscription(secret=new, previous_secret=old, previous_secret_expires_at=now + 60)
    event = _event()
    headers = delivery_headers(event, sub, now)
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == event.id
    assert headers["webhook-timestamp"] == str(int(now))
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    stamp = datetime.datetime.fromtimestamp(int(now), tz=datetime.UTC)
    # the first signature is the new secret's, the second the old one's, each as the library makes it
    assert signatures == [
        standardwebhooks.Webhook(new).sign(event.id, stamp, PAYLOAD.decode()),
        standardwebhooks.Webhook(old).sign(event.id, stamp, PAYLOAD.decode()),
    ]
    for secret in (old, new):
        assert standardwebhooks.Webhook(secret).verify(PAYLOAD, headers) == {
            "type": "transcript.completed", "timestamp": "2026-11-21T10:02:11Z", "data": {"id": "tr_1"},
        }  # fmt: skip
        svix.webhooks.Webhook(secret).verify(PAYLOAD, headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new_secret()).verify(PAYLOAD, headers)


def test_delivery_headers_after_grace_carry_one_signature() -> None:
    old, new = new_secret(), new_secret()
    now = time.time()
    sub = _subscription(secret=new, previous_secret=old, previous_secret_expires_at=now - 1)
    headers = delivery_headers(_event(), sub, now)
    assert len(headers["webhook-signature"].split(" ")) == 1
    svix.webhooks.Webhook(new).verify(PAYLOAD, headers)
    with pytest.raises(svix.webhooks.WebhookVerificationError):
        svix.webhooks.Webhook(old).verify(PAYLOAD, headers)


# -- one attempt against a real subscriber, on a real store --------------------------------------------


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    with running_subscriber() as sub:
        yield sub


async def _deliverable(
    store: Store, url: str, *, event_id: str | None = None
) -> tuple[Delivery, Event, Subscription]:
    """A subscription to `url`, one event for it, and its delivery as claimed by a worker."""
    sub = await store.create_subscription(
        new_id("sub"), url=url, secret=new_secret(), event_types=[], filter={}, description=None
    )
    event = _event(event_id or new_id("evt"), created_at=time.time())
    await store.finish_job(
        Finish(
            callback_id=None,
            job_id=event.job_id,
            job_status="completed",
            error=None,
            transcript_id=event.transcript_id,
            transcript_body=b"{}",
            event=event,
            subscription_ids=[sub.id],
        )  # fmt: skip
    )
    [delivery] = await store.claim_deliveries(now=time.time(), lease=30, limit=10, per_subscription=10)
    return delivery, event, sub


def _worker(
    store: Store, *, schedule: tuple[float, ...] = (0, 10, 20), clock: float | None = None, **config: Any
) -> DeliveryWorker:
    """A worker with a jitter-free schedule, a 1 s timeout and private targets allowed (the
    subscribers listen on 127.0.0.1) unless `config` says otherwise."""
    settings = {"timeout": 1.0, "allow_private": True, **config}
    cfg = WorkerConfig(policy=RetryPolicy(schedule, jitter=0), **settings)
    if clock is None:
        return DeliveryWorker(store, Fanout(store), cfg)
    return DeliveryWorker(store, Fanout(store), cfg, clock=lambda: clock)


def _session(timeout: float = 1.0, *, allow_private: bool = True) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=make_connector(allow_private=allow_private, limit=16),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


@pytest.mark.parametrize(
    ("reply", "state", "error", "retry_in"),
    [
        pytest.param(Reply(200), "succeeded", None, None, id="200"),
        pytest.param(Reply(204, body=b""), "succeeded", None, None, id="204"),
        pytest.param(Reply(500, body=b"boom"), "pending", "HTTP 500", 10, id="500-retried"),
        pytest.param(Reply(404), "pending", "HTTP 404", 10, id="404-retried"),
        pytest.param(
            Reply(302, headers={"location": "http://127.0.0.1:9/"}),
            "pending",
            "redirect (302) not followed",
            10,
            id="302-not-followed",
        ),  # fmt: skip
        pytest.param(
            Reply(429, headers={"retry-after": "15"}), "pending", "HTTP 429", 15, id="429-retry-after"
        ),
        pytest.param(Reply(503, headers={"retry-after": "100"}), "pending", "HTTP 503", 20, id="503-capped"),
        pytest.param(
            Reply(429, headers={"retry-after": "1"}), "pending", "HTTP 429", 10, id="429-not-sooner"
        ),
        pytest.param(
            Reply(500, headers={"retry-after": "15"}), "pending", "HTTP 500", 10, id="500-ignores-it"
        ),
        pytest.param(Reply(410), "failed", "HTTP 410", None, id="410-gone"),
    ],
)
async def test_attempt_records_the_answer_and_the_next_state(
    store: Store, subscriber: Subscriber, reply: Reply, state: str, error: str | None, retry_in: float | None
) -> None:
    subscriber.script(reply)
    delivery, event, sub = await _deliverable(store, subscriber.url)
    now = time.time()
    async with _session() as session:
        assert await _worker(store, clock=now).attempt(session, delivery, event, sub) == state

    [got] = subscriber.received
    assert got.webhook_id == event.id and got.body == PAYLOAD
    got.verify(sub.secret)
    found = await store.get_delivery(delivery.id)
    assert found is not None
    stored, [attempt] = found
    assert stored.status == state and stored.attempts == 1
    assert stored.last_status_code == reply.status == attempt.status_code
    assert stored.last_error == error == attempt.error
    assert stored.next_attempt_at == (None if retry_in is None else now + retry_in)
    assert attempt.attempted_at == now and attempt.trigger == "worker"
    assert attempt.latency_ms is not None and attempt.latency_ms >= 0
    assert attempt.response_excerpt == (reply.body.decode() or None)
    current = await store.get_subscription(sub.id)
    assert current is not None
    if reply.status == 410:
        assert current.enabled is False and current.disabled_reason and "410" in current.disabled_reason
    else:
        assert current.enabled is True
    assert (current.failing_since is None) == (state == "succeeded")


async def test_attempt_on_the_last_scheduled_try_fails_the_delivery(
    store: Store, subscriber: Subscriber
) -> None:
    subscriber.answer(Reply(500))
    delivery, event, sub = await _deliverable(store, subscriber.url)
    worker = _worker(store, schedule=(0, 0))
    async with _session() as session:
        assert await worker.attempt(session, delivery, event, sub) == "pending"
        [again] = await store.claim_deliveries(now=time.time(), lease=30, limit=10, per_subscription=10)
        assert again.schedule_index == 1
        assert await worker.attempt(session, again, event, sub) == "failed"
    found = await store.get_delivery(delivery.id)
    assert found is not None
    assert found[0].status == "failed" and found[0].next_attempt_at is None and found[0].attempts == 2
    assert len(found[1]) == 2


async def test_attempt_excerpt_is_bounded(store: Store, subscriber: Subscriber) -> None:
    subscriber.script(Reply(500, body=b"x" * (EXCERPT_BYTES * 5)))
    delivery, event, sub = await _deliverable(store, subscriber.url)
    async with _session() as session:
        await _worker(store).attempt(session, delivery, event, sub)
    found = await store.get_delivery(delivery.id)
    assert found is not None
    assert found[1][0].response_excerpt == "x" * EXCERPT_BYTES


async def test_an_answer_with_nul_or_undecodable_bytes_is_recorded(store: Store, subscriber: Subscriber) -> None:
    """PostgreSQL's text holds no NUL: stored as it came, the attempt's record failed, and the
    delivery was sent again each time its lease ran out, never recorded."""
    subscriber.script(Reply(200, body=b"ok\x00\xff!"))
    delivery, event, sub = await _deliverable(store, subscriber.url)
    async with _session() as session:
        assert await _worker(store).attempt(session, delivery, event, sub) == "succeeded"
    found = await store.get_delivery(delivery.id)
    assert found is not None
    assert found[0].status == "succeeded"
    assert found[1][0].response_excerpt == "ok\ufffd\ufffd!"


async def test_attempt_timeout_is_a_failure_with_no_status(store: Store, subscriber: Subscriber) -> None:
    subscriber.script(Reply(delay=5))
    delivery, event, sub = await _deliverable(store, subscriber.url)
    async with _session(timeout=0.5) as session:
        assert await _worker(store, timeout=0.5).attempt(session, delivery, event, sub) == "pending"
    found = await store.get_delivery(delivery.id)
    assert found is not None
    [attempt] = found[1]
    assert attempt.status_code is None and attempt.error == "timed out after 0.5 s"
    assert len(subscriber.received) == 1


async def test_attempt_to_a_closed_port_is_a_connection_failure(store: Store) -> None:
    delivery, event, sub = await _deliverable(store, closed_url())
    async with _session() as session:
        assert await _worker(store).attempt(session, delivery, event, sub) == "pending"
    found = await store.get_delivery(delivery.id)
    assert found is not None
    [attempt] = found[1]
    assert attempt.status_code is None and attempt.error and attempt.error.startswith("connection failed")


async def test_attempt_to_a_private_address_is_refused_without_contact(
    store: Store, subscriber: Subscriber
) -> None:
    delivery, event, sub = await _deliverable(store, subscriber.url)
    async with _session(allow_private=False) as session:
        assert await _worker(store, allow_private=False).attempt(session, delivery, event, sub) == "pending"
    found = await store.get_delivery(delivery.id)
    assert found is not None
    [attempt] = found[1]
    assert attempt.status_code is None and attempt.error and "loopback" in attempt.error
    assert subscriber.received == []


async def test_attempt_in_flight_when_the_subscription_is_deleted_is_not_rescheduled(
    store: Store, subscriber: Subscriber
) -> None:
    """Deleting a subscription cancels its pending deliveries, including one being sent: the
    attempt is still logged, but a failed one does not bring the delivery back as pending (it
    would stay pending for ever, since nothing claims deliveries of a deleted subscription)."""
    subscriber.script(Reply(500), Reply(200))
    failing, event, sub = await _deliverable(store, subscriber.url)
    assert await store.delete_subscription(sub.id)
    async with _session() as session:
        assert await _worker(store).attempt(session, failing, event, sub) == "cancelled"
    found = await store.get_delivery(failing.id)
    assert found is not None
    assert found[0].status == "cancelled" and found[0].next_attempt_at is None
    assert [a.status_code for a in found[1]] == [500]

    answered, event, sub = await _deliverable(store, subscriber.url)
    assert await store.delete_subscription(sub.id)
    async with _session() as session:
        await _worker(store).attempt(session, answered, event, sub)
    found = await store.get_delivery(answered.id)
    assert found is not None
    assert found[0].status == "succeeded"  # it did arrive: say so


# -- the loop ------------------------------------------------------------------------------------------


async def _run(worker: DeliveryWorker, until: Any, *, timeout: float) -> None:
    """Run the worker's loop until `until()` (an async predicate) holds, at most `timeout` seconds."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        deadline = time.monotonic() + timeout
        while not await until():
            assert time.monotonic() < deadline, "the worker did not get there in time"
            assert not task.done(), task
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def _pending(store: Store) -> int:
    return len((await store.list_deliveries(status="pending", limit=500)).items)


async def test_loop_keeps_an_endpoint_at_its_concurrency_limit_without_waiting_for_the_poll(
    store: Store, subscriber: Subscriber
) -> None:
    """12 deliveries to one slow-ish endpoint with a limit of 3 in flight and a 60 s poll: the
    worker never has more than 3 open at once, and claims the next as soon as a slot frees."""
    subscriber.answer(Reply(delay=0.2))
    sub = await store.create_subscription(
        new_id("sub"), url=subscriber.url, secret=new_secret(), event_types=[], filter={}, description=None
    )
    for _ in range(12):
        event = _event(new_id("evt"), created_at=time.time())
        await store.finish_job(
            Finish(
                callback_id=None,
                job_id=event.job_id,
                job_status="completed",
                error=None,
                transcript_id=event.transcript_id,
                transcript_body=b"{}",
                event=event,
                subscription_ids=[sub.id],
            )  # fmt: skip
        )
    worker = _worker(store, per_subscription=3, poll_interval=60)

    async def done() -> bool:
        return await _pending(store) == 0

    await _run(worker, done, timeout=15)
    assert len(subscriber.received) == 12
    assert subscriber.max_concurrent <= 3


async def test_loop_retries_when_due_without_waiting_for_the_poll(
    store: Store, subscriber: Subscriber
) -> None:
    subscriber.script(Reply(500), Reply(500))
    delivery, _, _ = await _deliverable(store, subscriber.url)
    await store.release_delivery(delivery.id)
    worker = _worker(store, schedule=(0, 0.2, 0.2), poll_interval=60)

    async def done() -> bool:
        return await _pending(store) == 0

    await _run(worker, done, timeout=15)
    found = await store.get_delivery(delivery.id)
    assert found is not None
    assert found[0].status == "succeeded"
    assert [a.status_code for a in found[1]] == [500, 500, 200]


async def test_loop_does_not_send_back_cookies_an_endpoint_set(store: Store, subscriber: Subscriber) -> None:
    """A subscriber's `Set-Cookie` is not kept: every delivery goes out as the first one did. The
    endpoint is named `localhost` (aiohttp's default jar keeps no cookies set by an IP address)."""
    subscriber.script(Reply(200, headers={"set-cookie": "session=abc123; Path=/"}))
    url = subscriber.url.replace("127.0.0.1", "localhost")
    sub = await store.create_subscription(
        new_id("sub"), url=url, secret=new_secret(), event_types=[], filter={}, description=None
    )
    for _ in range(2):  # one at a time (per_subscription=1): the second goes after the cookie was set
        await store.finish_job(_finish(_event(new_id("evt"), created_at=time.time()), [sub.id]))

    async def done() -> bool:
        return await _pending(store) == 0

    await _run(_worker(store, per_subscription=1, poll_interval=60), done, timeout=15)
    first, second = subscriber.received
    assert "cookie" not in first.headers and "cookie" not in second.headers
    second.verify(sub.secret)


async def test_heartbeat_while_running_and_withdrawn_after_a_clean_stop(store: Store) -> None:
    worker = _worker(store)

    async def alive() -> bool:
        return await worker_alive(store, time.time())

    assert not await alive()
    await _run(worker, alive, timeout=10)
    assert not await alive()


def _finish(event: Event, subscription_ids: list[str]) -> Finish:
    return Finish(
        callback_id=None, job_id=event.job_id, job_status="completed", error=None,
        transcript_id=event.transcript_id, transcript_body=b"{}", event=event, subscription_ids=subscription_ids,
    )  # fmt: skip


async def test_loop_sends_what_the_processor_hands_over_without_a_wake_up_or_a_claim(
    store: Store, subscriber: Subscriber
) -> None:
    """`Fanout.finish` while the worker runs: the delivery is written leased to it and sent at once,
    signed with the subscription's secret as it is when the event is written (rotated just before)."""
    sub = await store.create_subscription(
        new_id("sub"), url=subscriber.url, secret=new_secret(), event_types=[], filter={}, description=None
    )
    rotated = (await rotate_secret(store, sub.id, grace=0)).secret  # the old one no longer signs
    worker = _worker(store, poll_interval=60)  # no poll will find it in time
    event = _event(new_id("evt"), created_at=time.time())
    handed_over: list[bool] = []

    async def sent() -> bool:
        if worker.fanout.sender is not worker:
            return False
        if not handed_over:
            worker.fanout.delivery_wakeup.clear()
            handed_over.append(await worker.fanout.finish(_finish(event, [sub.id])))
            assert not worker.fanout.delivery_wakeup.is_set()  # nothing left for a claim to find
        return await _pending(store) == 0

    await _run(worker, sent, timeout=15)
    assert handed_over == [True]
    [received] = subscriber.received
    assert received.headers["webhook-id"] == event.id
    standardwebhooks.Webhook(rotated).verify(received.body, received.headers)
    [delivery] = await store.deliveries_for_events([event.id])
    assert delivery.status == "succeeded" and delivery.attempts == 1


async def test_deliveries_handed_to_a_stopped_worker_are_given_back_at_once(store: Store) -> None:
    sub = await store.create_subscription(
        new_id("sub"), url="http://127.0.0.1:9/hook", secret=new_secret(), event_types=[], filter={}, description=None
    )
    worker = _worker(store, poll_interval=60)

    async def running() -> bool:
        return worker.fanout.sender is worker

    await _run(worker, running, timeout=10)
    assert worker.fanout.sender is None and worker.lease_until([sub.id]) is None
    lease_until = time.time() + 600
    event = _event(new_id("evt"), created_at=time.time())
    finished = await store.finish(replace(_finish(event, [sub.id]), lease_until=lease_until))
    worker.take(event, finished.leased, lease_until)  # as a processor that asked before the stop would
    deadline = time.monotonic() + 10
    while not (claimed := await store.claim_deliveries(now=time.time(), lease=30, limit=10, per_subscription=10)):
        assert time.monotonic() < deadline, "the delivery was not given back"
        await asyncio.sleep(0.02)
    assert [d.event_id for d in claimed] == [event.id]
