"""End to end: replay through the API and `callboard replay`, with a running server and a stopped one.

A replayed delivery carries the original event id as `webhook-id` (consumers dedupe on it) and a
fresh signature; `--dry-run` sends nothing; `--no-wait` only enqueues for a running worker; with
no worker running, the CLI delivers by itself.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e._support import assert_one_line_error
from tests.fakes.generic import GenericFake
from tests.harness import CallboardProcess, wait_until
from tests.subscribers import (
    Reply,
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
    with contextlib.ExitStack() as stack:
        yield lambda **env: launch(stack, tmp_path, generic_fake, database_url, **env)


def _no_pending(cb: CallboardProcess) -> bool:
    return deliveries(cb, status="pending") == []


# -- the API -----------------------------------------------------------------------------------------


def test_replay_one_event_through_the_api(start: Start, generic_fake: GenericFake) -> None:
    cb = start()
    with running_subscriber() as hook:
        sub = subscribe(cb, hook.url)
        event_id = emit(cb, generic_fake)
        hook.wait_for(1)
        first = wait_delivery(cb, status="succeeded", event_id=event_id)

        preview = cb.http.post(f"/v1/events/{event_id}/replay", json={"dry_run": True})
        assert preview.status_code == 200, preview.text
        assert preview.json()["count"] == 1
        assert preview.json()["deliveries"] == [{"event_id": event_id, "subscription_id": sub["id"]}]
        assert _no_pending(cb) and len(hook.received) == 1  # a dry run enqueues nothing

        response = cb.http.post(f"/v1/events/{event_id}/replay")
        assert response.status_code == 202, response.text
        assert response.json()["count"] == 1 and response.json()["delivery_ids"] == [first["id"]]
        original, replayed = hook.wait_for(2)
        done = wait_delivery(cb, status="succeeded", event_id=event_id)

    assert replayed.webhook_id == original.webhook_id == event_id
    replayed.verify(sub["secret"])
    assert replayed.json() == original.json()
    assert done["attempts"] == 2 and [a["status_code"] for a in done["attempt_log"]] == [200, 200]

    missing = cb.http.post("/v1/events/evt_nosuch/replay")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_replay_by_filter_through_the_api(start: Start, generic_fake: GenericFake) -> None:
    """`status` failed / all / never-attempted, `type`, `subscription_id`, `since` and `until`."""
    cb = start()
    with running_subscriber() as good, running_subscriber(Reply(500)) as bad:
        good_sub = subscribe(cb, good.url)
        bad_sub = subscribe(cb, bad.url)
        completed = emit(cb, generic_fake)
        between = time.time()
        failed = emit(cb, generic_fake, status="failed")
        for event_id in (completed, failed):
            wait_delivery(cb, status="failed", event_id=event_id, subscription_id=bad_sub["id"])
        good.wait_for(2)

        def replay(**body: object) -> dict[str, object]:
            response = cb.http.post("/v1/replay", json=body)
            assert response.status_code == (200 if body.get("dry_run") else 202), response.text
            answer: dict[str, object] = response.json()
            return answer

        def pairs(answer: dict[str, object]) -> set[tuple[str, str]]:
            return {(p["event_id"], p["subscription_id"]) for p in answer["deliveries"]}  # type: ignore[attr-defined,index]

        assert pairs(replay(dry_run=True)) == {(completed, bad_sub["id"]), (failed, bad_sub["id"])}  # failed
        assert pairs(replay(dry_run=True, status="all", type="transcript.failed")) == {
            (failed, good_sub["id"]),
            (failed, bad_sub["id"]),
        }
        assert pairs(replay(dry_run=True, status="all", since=str(between))) == {
            (failed, good_sub["id"]),
            (failed, bad_sub["id"]),
        }
        assert pairs(
            replay(dry_run=True, status="all", until=str(between), subscription_id=good_sub["id"])
        ) == {(completed, good_sub["id"])}
        assert replay(dry_run=True, status="never-attempted")["count"] == 0
        assert _no_pending(cb)

        bad.answer(Reply(200))
        before = len(bad.received)
        assert replay(status="failed")["count"] == 2
        wait_until(lambda: len(bad.received) == before + 2, timeout=10, what="the failed deliveries again")
        assert sorted(r.webhook_id for r in bad.received[before:]) == sorted([completed, failed])
        for request in bad.received[before:]:
            request.verify(bad_sub["secret"])
        wait_until(lambda: _no_pending(cb), timeout=10, what="replayed deliveries to finish")
        assert replay(dry_run=True)["count"] == 0  # nothing failed any more

        late = subscribe(cb, good.url)  # created after both events: it never had them
        assert pairs(replay(dry_run=True, status="never-attempted")) == {
            (completed, late["id"]),
            (failed, late["id"]),
        }

        for bad_body, needle in (
            ({"status": "bogus"}, "status"),
            ({"since": "last tuesday"}, "since"),
            ({"subscription_id": "sub_nosuch"}, "sub_nosuch"),
            ({"event_ids": ["evt_nosuch"]}, "evt_nosuch"),
        ):
            response = cb.http.post("/v1/replay", json=bad_body)
            assert response.status_code == 400, (bad_body, response.text)
            assert needle in response.json()["error"]["message"]


# -- the CLI, with the server running ----------------------------------------------------------------


def test_cli_replay_with_a_running_server(start: Start, generic_fake: GenericFake) -> None:
    cb = start()
    with running_subscriber() as hook:
        sub = subscribe(cb, hook.url)
        completed = emit(cb, generic_fake)
        between = time.time()
        failed = emit(cb, generic_fake, status="failed")
        hook.wait_for(2)
        wait_until(lambda: _no_pending(cb), timeout=10, what="the first deliveries")

        one = cb.cli_json("replay", completed)
        assert (one["count"], one["succeeded"], one["failed"]) == (1, 1, 0)
        assert hook.webhook_ids() == [completed, failed, completed]
        hook.received[-1].verify(sub["secret"])

        window = ("--since", str(between - 3600), "--until", str(between), "--type", "transcript.completed")
        dry = cb.cli(
            "replay", *window, "--subscription", sub["id"], "--status", "all", "--dry-run", check=True
        )
        assert f"would deliver {completed} to {sub['id']}" in dry.stdout
        assert "1 deliveries would be sent (dry run: nothing sent)" in dry.stdout
        assert failed not in dry.stdout
        assert _no_pending(cb) and len(hook.received) == 3

        queued = cb.cli("replay", "--since", str(between), "--status", "all", "--no-wait", check=True)
        assert "1 deliveries enqueued" in queued.stdout and queued.stderr == ""
        assert hook.wait_for(4)[-1].webhook_id == failed  # the server's worker sent it

        none_failed = cb.cli("replay", check=True)  # a filter defaults to --status failed
        assert "0 deliveries enqueued" in none_failed.stdout

        missing = cb.cli("replay", "evt_nosuch")
        assert missing.returncode == 1
        assert_one_line_error(missing.stderr)
        assert "evt_nosuch" in missing.stderr
        bad_time = cb.cli("replay", "--since", "last tuesday")
        assert bad_time.returncode == 2

        cb.cli("subscriptions", "disable", sub["id"], check=True)
        refused = cb.cli("replay", completed, "--subscription", sub["id"])
        assert refused.returncode == 1 and "enable it first" in refused.stderr
        assert_one_line_error(refused.stderr)


# -- the CLI, with the server stopped ----------------------------------------------------------------


def test_cli_replay_delivers_by_itself_when_no_server_runs(start: Start, generic_fake: GenericFake) -> None:
    cb = start()
    with running_subscriber() as hook:
        sub = subscribe(cb, hook.url)
        first = emit(cb, generic_fake)
        second = emit(cb, generic_fake)
        hook.wait_for(2)
        wait_until(lambda: _no_pending(cb), timeout=10, what="the first deliveries")
        cb.terminate()  # a clean stop (uvicorn re-raises SIGTERM after shutting down, so no exit code check)
        assert "callboard.stopped" in cb.logs()

        done = cb.cli_json("replay", first)
        assert (done["count"], done["succeeded"], done["failed"]) == (1, 1, 0)
        assert hook.webhook_ids() == [first, second, first]
        hook.received[-1].verify(sub["secret"])

        again = cb.cli_json("replay", second, first)  # right after: the last CLI's worker is gone too
        assert (again["count"], again["succeeded"]) == (2, 2)
        assert sorted(hook.webhook_ids()[3:]) == sorted([first, second])

        queued = cb.cli("replay", first, "--no-wait", check=True)
        assert "1 deliveries enqueued" in queued.stdout
        assert "no delivery worker is running" in queued.stderr
        assert len(hook.received) == 5  # nothing sent: no worker runs
        pending = db_rows(cb, "SELECT event_id FROM deliveries WHERE status = 'pending'")
        assert pending == [{"event_id": first}]
        cb.start()
        assert hook.wait_for(6)[-1].webhook_id == first  # the restarted server's worker sends it
