"""End to end: signed deliveries from a real `callboard serve` to real subscriber servers.

Each test starts its own server (own SQLite file) with the settings it needs, makes events the
way production does (a `generic` job and the provider's callback), and looks at what arrived at
the subscriber, verified with the consumers' libraries (`standardwebhooks` and `svix`), and at
what Callboard reports through `/v1/deliveries` and `callboard deliveries … --json`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from routes.signing import new_secret
from tests.fakes.generic import GenericFake
from tests.harness import CallboardProcess, wait_until
from tests.subscribers import (
    Reply,
    closed_url,
    db_rows,
    deliveries,
    emit,
    launch,
    running_subscriber,
    subscribe,
    wait_delivery,
)

Start = Callable[..., CallboardProcess]


@pytest.fixture
def start(tmp_path: Path, database_url: str, generic_fake: GenericFake) -> Iterator[Start]:
    """`start(DELIVERY_TIMEOUT="2", …)`: a running server with those settings for this test."""
    with contextlib.ExitStack() as stack:
        yield lambda **env: launch(stack, tmp_path, generic_fake, database_url, **env)


# -- what a delivery looks like ----------------------------------------------------------------------


def test_delivery_is_signed_standard_webhook_that_both_libraries_verify(
    start: Start, generic_fake: GenericFake
) -> None:
    cb = start()
    with running_subscriber() as hook:
        sub = subscribe(cb, hook.url)
        assert sub["secret"].startswith("whsec_")
        before = int(time.time())
        event_id = emit(cb, generic_fake, external_id="call-7")
        [got] = hook.wait_for(1)

    assert got.path == "/hook"
    assert got.headers["content-type"] == "application/json"
    assert got.webhook_id == event_id and event_id.startswith("evt_")
    assert before - 5 <= int(got.headers["webhook-timestamp"]) <= int(time.time()) + 5
    assert len(got.signatures) == 1 and got.signatures[0].startswith("v1,")
    payload = got.verify(sub["secret"])  # standardwebhooks and svix, unchanged
    assert set(payload) == {"type", "timestamp", "data"}
    assert payload["type"] == "transcript.completed"
    event = cb.http.get(f"/v1/events/{event_id}").json()
    assert payload["data"] == event["data"]
    assert payload["data"]["metadata"]["external_id"] == "call-7"
    assert json.loads(got.body) == payload
    assert not got.verifies(new_secret()), "a different secret must not verify"
    tampered = type(got)(got.path, got.headers, got.body.replace(b"call-7", b"call-8"), got.at)
    assert not tampered.verifies(sub["secret"]), "a changed body must not verify"


def test_failed_transcript_is_delivered_as_transcript_failed(start: Start, generic_fake: GenericFake) -> None:
    cb = start()
    with running_subscriber() as hook:
        sub = subscribe(cb, hook.url)
        event_id = emit(cb, generic_fake, status="failed")
        [got] = hook.wait_for(1)
    payload = got.verify(sub["secret"])
    assert got.webhook_id == event_id
    assert payload["type"] == "transcript.failed"
    assert payload["data"]["status"] == "failed" and payload["data"]["error"]["message"]


# -- secret rotation ---------------------------------------------------------------------------------


def test_rotation_signs_with_old_and_new_secret_during_grace(start: Start, generic_fake: GenericFake) -> None:
    cb = start(ROTATION_GRACE="3600")
    with running_subscriber() as hook:
        old = subscribe(cb, hook.url)
        rotated = cb.cli_json("subscriptions", "rotate-secret", old["id"])
        new = rotated["secret"]
        assert new.startswith("whsec_") and new != old["secret"]
        assert rotated["rotating_until"] is not None
        emit(cb, generic_fake)
        [got] = hook.wait_for(1)
    assert len(got.signatures) == 2
    got.verify(new)
    got.verify(old["secret"])  # consumers that have not switched yet keep verifying


def test_rotation_without_grace_signs_with_new_secret_only(start: Start, generic_fake: GenericFake) -> None:
    cb = start(ROTATION_GRACE="0")
    with running_subscriber() as hook:
        old = subscribe(cb, hook.url)
        response = cb.http.post(f"/v1/subscriptions/{old['id']}/rotate-secret")
        assert response.status_code == 200, response.text
        new = response.json()["secret"]
        assert response.json()["rotating_until"] is None
        emit(cb, generic_fake)
        [got] = hook.wait_for(1)
    assert len(got.signatures) == 1
    got.verify(new)
    assert not got.verifies(old["secret"])


# -- retries -----------------------------------------------------------------------------------------


def test_subscriber_failing_twice_gets_the_event_on_the_third_attempt(
    start: Start, generic_fake: GenericFake
) -> None:
    """Schedule 0, 0.2, 0.4 s: two 500s, then 200. Every attempt carries the same webhook-id and a
    fresh valid signature; the attempt log shows each one, through the API and the CLI."""
    cb = start()
    with running_subscriber() as hook:
        hook.script(Reply(500, body=b"database down"), Reply(503, body=b"try later"))
        sub = subscribe(cb, hook.url)
        event_id = emit(cb, generic_fake)
        done = wait_delivery(cb, status="succeeded", event_id=event_id)
        got = hook.received

    assert [r.webhook_id for r in got] == [event_id] * 3
    for request in got:
        request.verify(sub["secret"])
    assert done["attempts"] == 3 and done["last_status_code"] == 200
    log = done["attempt_log"]
    assert [a["status_code"] for a in log] == [500, 503, 200]
    assert [a["error"] for a in log] == ["HTTP 500", "HTTP 503", None]
    assert [a["response_excerpt"] for a in log] == ["database down", "try later", '{"ok": true}']
    assert all(isinstance(a["latency_ms"], float) and a["latency_ms"] >= 0 for a in log)

    listed = cb.cli_json("deliveries", "list", "--event", event_id)
    assert [d["id"] for d in listed["data"]] == [done["id"]]
    assert listed["data"][0]["status"] == "succeeded" and listed["data"][0]["attempts"] == 3
    shown = cb.cli_json("deliveries", "show", done["id"])
    assert shown == done
    by_status = cb.cli_json("deliveries", "list", "--subscription", sub["id"], "--status", "failed")
    assert by_status["data"] == []

    # the log shows the failures (retries scheduled) at info; the success is in the attempt log
    cb.terminate()
    lines = [line for line in cb.log_lines() if line.get("event") == "delivery.attempt"]
    assert [(line["level"], line["status_code"], line["outcome"]) for line in lines] == [
        ("info", 500, "pending"),
        ("info", 503, "pending"),
    ]
    assert all(line["delivery"] == done["id"] and line["subscription"] == sub["id"] for line in lines)


def test_always_failing_delivery_is_failed_when_the_schedule_is_used_up(
    start: Start, generic_fake: GenericFake
) -> None:
    cb = start()
    with running_subscriber(Reply(500)) as hook:
        subscribe(cb, hook.url)
        event_id = emit(cb, generic_fake)
        failed = wait_delivery(cb, status="failed", event_id=event_id)
        assert len(hook.received) == 3  # the schedule has three entries
    assert failed["attempts"] == 3 and failed["next_attempt_at"] is None
    assert [a["status_code"] for a in failed["attempt_log"]] == [500, 500, 500]
    assert cb.cli_json("deliveries", "list", "--status", "failed")["data"][0]["id"] == failed["id"]
    cb.terminate()
    lines = [line for line in cb.log_lines() if line.get("event") == "delivery.attempt"]
    # two retries scheduled, then the delivery has failed for good: a warning
    assert [(line["level"], line["outcome"]) for line in lines] == [
        ("info", "pending"),
        ("info", "pending"),
        ("warning", "failed"),
    ]


def test_successful_attempts_are_logged_at_debug_level(start: Start, generic_fake: GenericFake) -> None:
    cb = start(LOG_LEVEL="debug")
    with running_subscriber() as hook:
        sub = subscribe(cb, hook.url)
        event_id = emit(cb, generic_fake)
        done = wait_delivery(cb, status="succeeded", event_id=event_id)
    cb.terminate()
    [line] = [line for line in cb.log_lines() if line.get("event") == "delivery.attempt"]
    assert line["level"] == "debug" and line["outcome"] == "succeeded" and line["status_code"] == 200
    assert line["delivery"] == done["id"] and line["event_id"] == event_id and line["subscription"] == sub["id"]


def test_redirect_is_a_failure_and_is_not_followed(start: Start, generic_fake: GenericFake) -> None:
    cb = start()
    with running_subscriber() as elsewhere, running_subscriber() as hook:
        hook.answer(Reply(302, headers={"location": elsewhere.url}))
        subscribe(cb, hook.url)
        event_id = emit(cb, generic_fake)
        failed = wait_delivery(cb, status="failed", event_id=event_id)
        assert elsewhere.received == []
    assert [a["status_code"] for a in failed["attempt_log"]] == [302, 302, 302]
    assert all("redirect" in a["error"] and "not followed" in a["error"] for a in failed["attempt_log"])


def test_gone_disables_the_subscription(start: Start, generic_fake: GenericFake) -> None:
    cb = start()
    with running_subscriber(Reply(410)) as hook:
        sub = subscribe(cb, hook.url)
        event_id = emit(cb, generic_fake)
        failed = wait_delivery(cb, status="failed", event_id=event_id)
        assert failed["attempts"] == 1  # 410 is not retried
        shown = cb.http.get(f"/v1/subscriptions/{sub['id']}").json()
        assert shown["enabled"] is False
        assert "410" in shown["disabled_reason"]
        later = emit(cb, generic_fake)
        assert deliveries(cb, event_id=later) == []
        assert len(hook.received) == 1


def test_retry_after_of_429_is_honoured(start: Start, generic_fake: GenericFake) -> None:
    """Schedule 0, 0.5 s; the subscriber answers 429 with `Retry-After: 1`. The retry waits the
    second the subscriber asked for (up to twice the scheduled delay), not the scheduled 0.5 s."""
    cb = start(RETRY_SCHEDULE="0,0.5")
    with running_subscriber() as hook:
        hook.script(Reply(429, headers={"retry-after": "1"}))
        subscribe(cb, hook.url)
        event_id = emit(cb, generic_fake)
        done = wait_delivery(cb, status="succeeded", event_id=event_id)
    assert [a["status_code"] for a in done["attempt_log"]] == [429, 200]
    first, second = (r["attempted_at"] for r in db_rows(
        cb, "SELECT attempted_at FROM attempts WHERE delivery_id = ? ORDER BY attempted_at", done["id"]
    ))  # fmt: skip
    assert second - first >= 1.0  # the jittered schedule alone would retry after 0.4-0.6 s


# -- isolation ---------------------------------------------------------------------------------------


def test_slow_and_dead_subscribers_do_not_delay_the_others(start: Start, generic_fake: GenericFake) -> None:
    """One subscriber answers after 10 s (past the 2 s timeout), one refuses connections; the
    healthy one gets every event within a second of it happening."""
    cb = start(DELIVERY_TIMEOUT="2", RETRY_SCHEDULE="0,0.2,0.2,0.2")
    with running_subscriber(Reply(delay=10)) as slow, running_subscriber() as fast:
        slow_sub = subscribe(cb, slow.url)
        dead_sub = subscribe(cb, closed_url())
        subscribe(cb, fast.url)
        for n in range(1, 4):
            event_id = emit(cb, generic_fake)
            assert fast.wait_for(n, timeout=1.0)[-1].webhook_id == event_id
        assert len(slow.wait_for(1)) >= 1

        def attempted(sub_id: str, needle: str) -> bool:
            for d in deliveries(cb, subscription_id=sub_id):
                log = cb.http.get(f"/v1/deliveries/{d['id']}").json()["attempt_log"]
                if any(a["error"] and needle in a["error"] for a in log):
                    return True
            return False

        wait_until(
            lambda: attempted(slow_sub["id"], "timed out after 2 s"), timeout=10, what="a timeout attempt"
        )
        wait_until(
            lambda: attempted(dead_sub["id"], "connection failed"), timeout=10, what="a refused attempt"
        )
    assert fast.webhook_ids() == [e["id"] for e in reversed(cb.events())]


# -- crash safety ------------------------------------------------------------------------------------


def test_delivery_in_flight_when_the_worker_is_killed_is_retried_after_the_lease(
    start: Start, generic_fake: GenericFake
) -> None:
    """SIGKILL while a slow subscriber holds the request: nothing is stuck. After a restart that
    delivery is taken again once its lease (2 × 2 s timeout + 5 s) has run out, and succeeds; a
    retry that was scheduled but not yet due when the process died is made too.

    Both deliveries are written already leased to the running worker, which has room, when the
    job finishes (the hand-over, `Sender.lease_until`), not claimed: this is the crash path of
    that hand-over."""
    cb = start(DELIVERY_TIMEOUT="2", RETRY_SCHEDULE="0,3,3")
    with running_subscriber() as slow, running_subscriber() as flaky:
        slow.script(Reply(delay=30))
        flaky.script(Reply(500))
        slow_sub = subscribe(cb, slow.url)
        flaky_sub = subscribe(cb, flaky.url)
        event_id = emit(cb, generic_fake)
        [first] = slow.wait_for(1)
        wait_until(
            lambda: deliveries(cb, subscription_id=flaky_sub["id"])[0]["attempts"] == 1,
            timeout=5,
            what="the flaky subscriber's first attempt to be recorded",
        )
        cb.kill()  # the worker dies mid-request to `slow`, with a retry to `flaky` scheduled

        sql = (
            "SELECT status, lease_until, next_attempt_at, attempts FROM deliveries WHERE subscription_id = ?"
        )
        [held] = db_rows(cb, sql, slow_sub["id"])
        assert held["status"] == "pending" and held["attempts"] == 0  # the killed attempt left no record
        assert (
            time.time() < held["lease_until"] <= first.at + 2 * 2 + 5
        )  # leased (handed over) before it was sent
        [scheduled] = db_rows(cb, sql, flaky_sub["id"])
        assert scheduled["status"] == "pending" and scheduled["attempts"] == 1
        assert scheduled["next_attempt_at"] > time.time()

        cb.start()
        later = emit(cb, generic_fake)
        slow.wait_for_id(later, timeout=5)  # the restarted worker delivers, the held one waits for its lease
        recovered = wait_delivery(
            cb, status="succeeded", event_id=event_id, subscription_id=flaky_sub["id"], timeout=10
        )
        retried = wait_delivery(
            cb, status="succeeded", event_id=event_id, subscription_id=slow_sub["id"], timeout=20
        )
        to_slow, to_flaky = slow.received, flaky.received

    assert [r.webhook_id for r in to_slow].count(event_id) == 2  # at least once: the same webhook-id again
    retry = next(r for r in to_slow[1:] if r.webhook_id == event_id)
    assert retry.at >= held["lease_until"]
    assert retried["attempts"] == 1 and retried["attempt_log"][0]["status_code"] == 200
    assert sorted(r.webhook_id for r in to_flaky) == sorted([event_id, event_id, later])
    assert [a["status_code"] for a in recovered["attempt_log"]] == [500, 200]
    for request in to_slow:
        request.verify(slow_sub["secret"])
    for request in to_flaky:
        request.verify(flaky_sub["secret"])
    assert {d["status"] for d in deliveries(cb)} == {"succeeded"}
