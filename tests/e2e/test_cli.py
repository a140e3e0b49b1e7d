"""The real `callboard` console script against a real database, with the server stopped.

One module-scoped setup runs a server, lets one job complete and another fail, and stops the
server; every test then reads that database through the CLI only.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from routes.signing import new_secret
from storage.ids import new_id
from storage.records import CB_DONE, NewCallback
from storage.store import open_store
from tests.databases import BACKENDS, database
from tests.e2e._support import assert_one_line_error, count, query
from tests.fakes.base import running
from tests.fakes.generic import GenericFake
from tests.harness import CallboardProcess, base_env, run_cli


@dataclass(frozen=True)
class Stopped:
    cb: CallboardProcess
    completed: str  # job ids
    failed: str


@pytest.fixture(scope="module", params=BACKENDS)
def stopped(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stopped]:
    tmp = tmp_path_factory.mktemp("cli")
    with database(request.param, tmp) as url, running(GenericFake(webhook_secret=new_secret())) as fake:
        cb = CallboardProcess(tmp, database_url=url, fakes={"generic": fake})
        with cb:
            ids = {}
            for status in ("completed", "failed"):
                response = cb.http.post(
                    "/v1/jobs", json={"provider": "generic", "audio_url": "https://example.com/a.wav"}
                )
                assert response.status_code == 201, response.text
                job = response.json()
                [answer] = fake.callback(job["provider_job_id"], status=status)
                assert answer.status_code == 200, answer.text
                cb.wait_job(job["id"], status)
                ids[status] = job["id"]
        assert cb.proc is not None and cb.proc.poll() is not None  # the server is stopped from here on
        yield Stopped(cb, ids["completed"], ids["failed"])


def json_document(stopped: Stopped, *args: str) -> dict[str, Any]:
    """Run a command with `--json`; stdout must be exactly one JSON document and stderr empty."""
    result = stopped.cb.cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    document: dict[str, Any] = json.loads(result.stdout)  # fails on anything beside the one document
    return document


def test_jobs_list_json_is_one_document_with_every_job(stopped: Stopped) -> None:
    listing = json_document(stopped, "jobs", "list")
    assert listing["object"] == "list"
    assert listing["has_more"] is False
    statuses = {j["id"]: j["status"] for j in listing["data"]}
    assert statuses == {stopped.completed: "completed", stopped.failed: "failed"}


def test_jobs_list_json_pages_with_cursor(stopped: Stopped) -> None:
    first = json_document(stopped, "jobs", "list", "--limit", "1")
    assert first["has_more"] is True
    second = json_document(stopped, "jobs", "list", "--limit", "1", "--cursor", first["next_cursor"])
    assert second["has_more"] is False
    assert [first["data"][0]["id"], second["data"][0]["id"]] == [stopped.failed, stopped.completed]


def test_jobs_show_json_has_the_transcript(stopped: Stopped) -> None:
    job = json_document(stopped, "jobs", "show", stopped.completed)
    assert job["id"] == stopped.completed
    assert job["status"] == "completed"
    assert job["transcript"]["job_id"] == stopped.completed
    assert job["transcript"]["text"]
    failed = json_document(stopped, "jobs", "show", stopped.failed)
    assert failed["transcript"]["error"]["message"]


def test_events_list_and_show_json(stopped: Stopped) -> None:
    listing = json_document(stopped, "events", "list")
    by_job = {e["job_id"]: e for e in listing["data"]}
    assert set(by_job) == {stopped.completed, stopped.failed}
    assert by_job[stopped.completed]["type"] == "transcript.completed"
    assert by_job[stopped.failed]["type"] == "transcript.failed"
    only_failed = json_document(stopped, "events", "list", "--type", "transcript.failed", "--since", "1h")
    assert [e["job_id"] for e in only_failed["data"]] == [stopped.failed]
    assert json_document(stopped, "events", "list", "--until", "1h")["data"] == []

    event = json_document(stopped, "events", "show", by_job[stopped.completed]["id"])
    assert event["id"] == by_job[stopped.completed]["id"]
    assert event["data"]["job_id"] == stopped.completed
    assert event["data"]["status"] == "completed"


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("jobs", "list"), id="jobs-list"),
        pytest.param(("events", "list"), id="events-list"),
    ],
)
def test_listings_without_json_print_tables(stopped: Stopped, args: tuple[str, ...]) -> None:
    result = stopped.cb.cli(*args)
    assert result.returncode == 0, result.stderr
    with pytest.raises(ValueError):
        json.loads(result.stdout)
    header = result.stdout.splitlines()[1]
    assert "id" in header and "provider" in header
    assert stopped.completed in result.stdout and stopped.failed in result.stdout


def test_show_without_json_prints_fields(stopped: Stopped) -> None:
    result = stopped.cb.cli("jobs", "show", stopped.completed)
    assert result.returncode == 0, result.stderr
    assert f"id: {stopped.completed}" in result.stdout
    assert "status: completed" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("jobs", "show", "job_nosuch"), id="job"),
        pytest.param(("jobs", "show", "job_nosuch", "--json"), id="job-json"),
        pytest.param(("events", "show", "evt_nosuch"), id="event"),
        pytest.param(("events", "show", "evt_nosuch", "--json"), id="event-json"),
    ],
)
def test_unknown_id_exits_1_with_one_line(stopped: Stopped, args: tuple[str, ...]) -> None:
    result = stopped.cb.cli(*args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert_one_line_error(result.stderr)
    assert args[2] in result.stderr


@pytest.mark.parametrize(
    "command", [pytest.param(("jobs", "list"), id="jobs"), pytest.param(("events", "list"), id="events")]
)
def test_bad_since_is_a_usage_error(stopped: Stopped, command: tuple[str, ...]) -> None:
    result = stopped.cb.cli(*command, "--since", "last tuesday")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "--since" in result.stderr


def test_migrate_creates_schema_then_reports_up_to_date(tmp_path: Path, database_url: str) -> None:
    env = base_env(tmp_path, database_url=database_url)
    first = run_cli("migrate", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    applied = (
        "0001_initial, 0002_deliveries_due_per_subscription, 0003_subscriptions_version,"
        " 0004_deliveries_due_covers_the_lease, 0005_callbacks_without_job_index,"
        " 0006_deliveries_room_for_leases, 0007_deliveries_due_holds_pending_rows"
    )
    assert first.stdout.strip() == f"applied: {applied}"
    again = run_cli("migrate", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "the schema is up to date"
    versions = [row["version"] for row in query(database_url, "SELECT version FROM schema_migrations")]
    assert versions == [1, 2, 3, 4, 5, 6, 7]
    for table in ("jobs", "callbacks", "events", "transcripts", "subscriptions", "deliveries"):
        assert count(database_url, table) == 0


async def _processed_callback(database_url: str, received_at: float) -> str:
    async with open_store(database_url) as store:
        callback = NewCallback(
            new_id("cb", received_at), "generic", new_id("msg"), None, None, None, "POST", {}, {}, b"{}", received_at
        )
        result = await store.ingest(callback)
        await store.settle_callback(result.id, CB_DONE)
        return result.id


def test_prune_deletes_what_is_older_than_the_duration(tmp_path: Path, database_url: str) -> None:
    env = base_env(tmp_path, database_url=database_url)
    old = asyncio.run(_processed_callback(database_url, time.time() - 7200))
    recent = asyncio.run(_processed_callback(database_url, time.time() - 60))
    result = run_cli("prune", "--older-than", "1h", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"jobs": 0, "events": 0, "deliveries": 0, "attempts": 0, "callbacks": 1}
    assert [r["id"] for r in query(database_url, "SELECT id FROM callbacks")] == [recent]
    assert old != recent
    again = run_cli("prune", "--older-than", "1h", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "pruned 0 jobs, 0 events, 0 deliveries, 0 attempts, 0 callbacks"


def test_prune_with_a_bad_duration_is_a_usage_error(tmp_path: Path, database_url: str) -> None:
    env = base_env(tmp_path, database_url=database_url)
    result = run_cli("prune", "--older-than", "a while", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "--older-than" in result.stderr


def test_an_unknown_log_level_is_a_configuration_error(tmp_path: Path, database_url: str) -> None:
    env = {**base_env(tmp_path, database_url=database_url), "CALLBOARD_LOG_LEVEL": "loud"}
    result = run_cli("serve", "--port", "0", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result.stderr)
    assert "CALLBOARD_LOG_LEVEL must be one of debug, info, warning, error, not 'loud'" in result.stderr
