"""End to end: managing subscriptions (API and CLI), filters, the SSRF guard and endpoint health.

Real `callboard serve` processes, the real console script, real subscriber servers on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from routes.ssrf import forbidden_reason
from tests.e2e._support import assert_one_line_error
from tests.fakes.generic import GenericFake
from tests.harness import CallboardProcess, wait_until
from tests.subscribers import Reply, deliveries, emit, launch, running_subscriber, subscribe, wait_delivery

Start = Callable[..., CallboardProcess]


@pytest.fixture
def start(tmp_path: Path, database_url: str, generic_fake: GenericFake) -> Iterator[Start]:
    """`start(ALLOW_PRIVATE_TARGETS="false", …)`: a running server with those settings."""
    with contextlib.ExitStack() as stack:
        yield lambda **env: launch(stack, tmp_path, generic_fake, database_url, **env)


# -- the API -----------------------------------------------------------------------------------------


def test_secret_is_shown_on_creation_only(start: Start) -> None:
    cb = start()
    created = subscribe(cb, "http://127.0.0.1:9/hook", description="billing")
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert created["id"].startswith("sub_") and created["enabled"] is True
    assert created["event_types"] == ["transcript.completed", "transcript.failed"]

    shown = cb.http.get(f"/v1/subscriptions/{created['id']}")
    listed = cb.http.get("/v1/subscriptions")
    cli_listed = cb.cli("subscriptions", "list", "--json", check=True).stdout
    cli_shown = cb.cli("subscriptions", "show", created["id"], "--json", check=True).stdout
    cli_table = cb.cli("subscriptions", "list", check=True).stdout
    for text in (shown.text, listed.text, cli_listed, cli_shown, cli_table):
        assert secret not in text and secret.removeprefix("whsec_") not in text
    assert "secret" not in shown.json()
    assert [s["id"] for s in listed.json()["data"]] == [created["id"]]
    assert {k: v for k, v in created.items() if k != "secret"} == shown.json()


def test_patch_and_delete(start: Start) -> None:
    cb = start()
    sub = subscribe(cb, "http://127.0.0.1:9/hook")
    url = f"/v1/subscriptions/{sub['id']}"

    patched = cb.http.patch(
        url,
        json={"description": "only gold", "event_types": ["transcript.failed"],
              "filter": {"provider": ["generic"], "metadata": {"tier": ["gold", "platinum"]}}},
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["description"] == "only gold" and body["event_types"] == ["transcript.failed"]
    assert body["filter"] == {"provider": ["generic"], "metadata": {"tier": ["gold", "platinum"]}}
    assert "secret" not in body
    assert cb.http.get(url).json() == body

    disabled = cb.http.patch(url, json={"enabled": False}).json()
    assert disabled["enabled"] is False and disabled["disabled_reason"]
    enabled = cb.http.patch(url, json={"enabled": True}).json()
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None

    for bad in (
        {"colour": "red"},
        {"event_types": ["transcript.started"]},
        {"filter": {"provider": ["nosuch"]}},
        {"enabled": "yes"},
        {"url": "ftp://example.com/x"},
    ):
        response = cb.http.patch(url, json=bad)
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["error"]["code"] == "invalid_request"
        assert response.json()["error"]["message"]
    assert cb.http.get(url).json() == enabled  # nothing changed

    assert cb.http.delete(url).json() == {"id": sub["id"], "object": "subscription", "deleted": True}
    gone = cb.http.get(url)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert cb.http.delete(url).status_code == 404
    assert cb.http.patch(url, json={"enabled": True}).status_code == 404
    assert cb.http.post(f"{url}/rotate-secret").status_code == 404


# -- the CLI -----------------------------------------------------------------------------------------


def test_cli_manages_subscriptions(start: Start) -> None:
    cb = start(ROTATION_GRACE="3600")
    added = cb.cli_json(
        "subscriptions", "add", "http://127.0.0.1:9/hook", "--event", "transcript.completed",
        "--provider", "generic", "--metadata", "tier=gold", "--description", "gold tier",
    )  # fmt: skip
    sub_id = added["id"]
    assert added["secret"].startswith("whsec_")
    assert added["event_types"] == ["transcript.completed"]
    assert added["filter"] == {"provider": ["generic"], "metadata": {"tier": "gold"}}
    assert cb.http.get(f"/v1/subscriptions/{sub_id}").json()["description"] == "gold tier"

    listed = cb.cli_json("subscriptions", "list")
    assert [s["id"] for s in listed["data"]] == [sub_id] and "secret" not in listed["data"][0]
    shown = cb.cli_json("subscriptions", "show", sub_id)
    assert shown["url"] == "http://127.0.0.1:9/hook" and "secret" not in shown

    disabled = cb.cli_json("subscriptions", "disable", sub_id)
    assert disabled["enabled"] is False and disabled["disabled_reason"]
    assert cb.http.get(f"/v1/subscriptions/{sub_id}").json()["enabled"] is False
    enabled = cb.cli("subscriptions", "enable", sub_id, check=True)
    assert f"{sub_id} enabled" in enabled.stdout
    assert f"callboard replay --subscription {sub_id} --status never-attempted" in enabled.stdout
    assert cb.http.get(f"/v1/subscriptions/{sub_id}").json()["enabled"] is True

    rotated = cb.cli_json("subscriptions", "rotate-secret", sub_id)
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != added["secret"]
    assert rotated["rotating_until"] is not None

    removed = cb.cli_json("subscriptions", "remove", sub_id)
    assert removed == {"id": sub_id, "object": "subscription", "deleted": True}
    other = cb.cli_json("subscriptions", "add", "https://example.com/hook")["id"]
    assert cb.cli("subscriptions", "remove", other, check=True).stdout == f"removed {other}\n"
    assert cb.http.get(f"/v1/subscriptions/{sub_id}").status_code == 404
    commands = ("show", "remove", "enable", "disable", "rotate-secret")
    with ThreadPoolExecutor(len(commands)) as pool:  # independent runs of the console script
        results = list(pool.map(lambda command: cb.cli("subscriptions", command, sub_id), commands))
    for command, missing in zip(commands, results, strict=True):
        assert missing.returncode == 1, (command, missing.stderr)
        assert_one_line_error(missing.stderr)
        assert sub_id in missing.stderr

    bad = cb.cli("subscriptions", "add", "http://127.0.0.1:9/hook", "--metadata", "no-equals-sign")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr


# -- filters -----------------------------------------------------------------------------------------


def test_filters_select_events_by_type_provider_and_metadata(start: Start, generic_fake: GenericFake) -> None:
    cb = start()
    with contextlib.ExitStack() as stack:
        hooks = {
            name: stack.enter_context(running_subscriber()) for name in ("all", "failed", "gold", "other")
        }
        subs = {
            "all": subscribe(cb, hooks["all"].url),
            "failed": subscribe(cb, hooks["failed"].url, event_types=["transcript.failed"]),
            "gold": subscribe(cb, hooks["gold"].url, filter={"metadata": {"tier": "gold"}}),
            "other": subscribe(cb, hooks["other"].url, filter={"provider": ["assemblyai"]}),
        }
        silver = emit(cb, generic_fake, tier="silver")
        gold_failed = emit(cb, generic_fake, status="failed", tier="gold")
        hooks["all"].wait_for(2)
        hooks["failed"].wait_for(1)
        hooks["gold"].wait_for(1)

        def routed(event_id: str) -> set[str]:
            by_sub = {d["subscription_id"] for d in deliveries(cb, event_id=event_id)}
            return {name for name, sub in subs.items() if sub["id"] in by_sub}

        assert routed(silver) == {"all"}
        assert routed(gold_failed) == {"all", "failed", "gold"}
        assert hooks["all"].webhook_ids() == [silver, gold_failed]
        assert hooks["failed"].webhook_ids() == [gold_failed]
        assert hooks["gold"].webhook_ids() == [gold_failed]
        assert hooks["other"].received == []


# -- SSRF --------------------------------------------------------------------------------------------


REFUSED_URLS = [
    "http://127.0.0.1:8080/hook",  # loopback literal
    "http://localhost/hook",
    "http://169.254.169.254/latest/meta-data",  # cloud metadata
    "http://[::1]:8080/hook",
    "http://10.0.0.7/hook",  # private
    "ftp://example.com/hook",  # not http
    "example.com/hook",  # no scheme
]


def test_private_and_non_http_targets_are_refused(start: Start) -> None:
    """With CALLBOARD_ALLOW_PRIVATE_TARGETS=false: a 400 JSON error from the API, exit 1 with one
    readable line from the CLI, for creation and for changing the URL; nothing is stored."""
    cb = start(ALLOW_PRIVATE_TARGETS="false")
    ok = subscribe(cb, "https://example.com/hook")
    for url in REFUSED_URLS:
        response = cb.http.post("/v1/subscriptions", json={"url": url})
        assert response.status_code == 400, (url, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and error["message"].startswith("url: "), url

        moved = cb.http.patch(f"/v1/subscriptions/{ok['id']}", json={"url": url})
        assert moved.status_code == 400 and moved.json()["error"]["message"].startswith("url: "), url

    for url in REFUSED_URLS[:2] + REFUSED_URLS[-2:]:  # the CLI shares the check; a few suffice
        added = cb.cli("subscriptions", "add", url)
        assert added.returncode == 1, (url, added.stdout)
        assert_one_line_error(added.stderr)
        assert added.stdout == ""
    assert [s["id"] for s in cb.http.get("/v1/subscriptions").json()["data"]] == [ok["id"]]
    assert cb.http.get(f"/v1/subscriptions/{ok['id']}").json()["url"] == "https://example.com/hook"


def test_refusal_messages_say_why(start: Start) -> None:
    cb = start(ALLOW_PRIVATE_TARGETS="false")
    loopback = cb.http.post("/v1/subscriptions", json={"url": "http://127.0.0.1:8080/hook"}).json()
    assert "loopback" in loopback["error"]["message"]
    assert "CALLBOARD_ALLOW_PRIVATE_TARGETS" in loopback["error"]["message"]
    scheme = cb.cli("subscriptions", "add", "ftp://example.com/hook")
    assert "use http or https" in scheme.stderr


def _loopback_name() -> str:
    """A host name (not `localhost`) that resolves to loopback or private addresses only: this
    machine's own name, as /etc/hosts maps it."""
    name = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)}
    assert addresses and all(forbidden_reason(a) for a in addresses), (name, addresses)
    return name


def test_host_resolving_to_loopback_is_refused_at_connect_time(
    start: Start, generic_fake: GenericFake
) -> None:
    """A name passes the check at creation (names are not resolved then: DNS can change), but the
    worker checks what it resolves to when it connects, and refuses. The refusal is an attempt
    with an error, like any connection failure, and nothing reaches the address."""
    cb = start(ALLOW_PRIVATE_TARGETS="false")
    name = _loopback_name()
    with running_subscriber() as hook:
        port = hook.base_url.rsplit(":", 1)[1]
        sub = subscribe(cb, f"http://{name}:{port}/hook")
        event_id = emit(cb, generic_fake)
        failed = wait_delivery(cb, status="failed", event_id=event_id)
        assert hook.received == []
    for attempt in failed["attempt_log"]:
        assert attempt["status_code"] is None
        assert "connection failed" in attempt["error"] and f"{name!r} resolves to" in attempt["error"]
    assert cb.http.get(f"/v1/subscriptions/{sub['id']}").json()["url"] == f"http://{name}:{port}/hook"


# -- endpoint health ---------------------------------------------------------------------------------


def test_failing_endpoint_is_disabled_and_recovers_what_it_missed(
    start: Start, generic_fake: GenericFake
) -> None:
    """With CALLBOARD_DISABLE_AFTER=2, an endpoint whose deliveries all fail for 2 s is disabled
    with a reason. Events while it is disabled get no delivery; after re-enabling it, replaying
    `--status never-attempted` for it sends exactly those events, and nothing else."""
    cb = start(DISABLE_AFTER="2", HEALTH_INTERVAL="0.2")
    with running_subscriber(Reply(500)) as flaky, running_subscriber() as steady:
        sub = subscribe(cb, flaky.url)
        subscribe(cb, steady.url)
        first = emit(cb, generic_fake)
        wait_delivery(cb, status="failed", event_id=first, subscription_id=sub["id"])
        shown = wait_until(
            lambda: (s := cb.http.get(f"/v1/subscriptions/{sub['id']}").json())["enabled"] is False and s,
            timeout=10,
            what="the failing subscription to be disabled",
        )
        assert "failed" in shown["disabled_reason"] and shown["disabled_at"]

        missed = [emit(cb, generic_fake), emit(cb, generic_fake, status="failed")]
        steady.wait_for(3)
        assert [d["event_id"] for d in deliveries(cb, subscription_id=sub["id"])] == [first]

        flaky.answer(Reply(200))
        before = len(flaky.received)
        assert (
            cb.http.patch(f"/v1/subscriptions/{sub['id']}", json={"enabled": True}).json()["enabled"] is True
        )
        plan = cb.cli_json("replay", "--subscription", sub["id"], "--status", "never-attempted", "--dry-run")
        assert plan["count"] == 2
        assert sorted(p["event_id"] for p in plan["deliveries"]) == sorted(missed)
        assert {p["subscription_id"] for p in plan["deliveries"]} == {sub["id"]}

        done = cb.cli_json("replay", "--subscription", sub["id"], "--status", "never-attempted")
        assert (done["count"], done["succeeded"], done["failed"]) == (2, 2, 0)
        got = flaky.received[before:]
        assert sorted(r.webhook_id for r in got) == sorted(missed)
        for request in got:
            request.verify(sub["secret"])
        again = cb.cli_json("replay", "--subscription", sub["id"], "--status", "never-attempted", "--dry-run")
        assert again["count"] == 0
