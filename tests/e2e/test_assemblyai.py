"""End to end through a real `callboard serve`: AssemblyAI's thin, header-authenticated callbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e._support import assert_one_line_error, count
from tests.fakes.assemblyai import AssemblyAIFake
from tests.harness import CallboardProcess, base_env, run_cli
from tests.servers import free_port

AUDIO = "https://storage.example.com/call-55123.mp3"
AUTH_HEADER = "x-callboard-auth"


def submit(cb: CallboardProcess, **metadata: str) -> dict[str, Any]:
    response = cb.http.post(
        "/v1/jobs",
        json={
            "provider": "assemblyai",
            "audio_url": AUDIO,
            "metadata": metadata,
            "options": {"punctuate": True},
        },
    )
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def test_api_submission_registers_webhook_url_and_auth_header(
    callboard: CallboardProcess, assemblyai_fake: AssemblyAIFake
) -> None:
    job = submit(callboard, external_id="call-55123")
    assert job["status"] == "submitted"
    request = assemblyai_fake.jobs[job["provider_job_id"]].request
    assert request["audio_url"] == AUDIO
    assert request["punctuate"] is True
    assert request["webhook_url"].startswith(f"{callboard.url}/callbacks/assemblyai/")
    assert request["webhook_auth_header_name"] == "X-Callboard-Auth"
    assert len(request["webhook_auth_header_value"]) >= 32


def test_completed_callback_completes_job_with_normalized_transcript(
    callboard: CallboardProcess, assemblyai_fake: AssemblyAIFake
) -> None:
    """The thin callback is resolved by fetching the transcript; ms become seconds."""
    job = submit(callboard, external_id="call-55123")
    [response] = assemblyai_fake.callback(job["provider_job_id"], status="completed")
    assert response.status_code == 200, response.text
    assert response.json()["duplicate"] is False

    done = callboard.wait_job(job["id"], "completed")
    transcript = done["transcript"]
    assert transcript["provider"] == "assemblyai"
    assert transcript["provider_job_id"] == job["provider_job_id"]
    assert transcript["job_id"] == job["id"]
    assert transcript["text"] == "Thanks for calling Contoso. Hi, I need help."
    assert transcript["language"] == "en_us"
    assert transcript["duration"] == 4.0
    assert transcript["confidence"] == 0.9575
    first_word = {"word": "Thanks", "start": 0.24, "end": 0.52, "confidence": 0.98, "speaker": "A"}
    assert transcript["words"][0] == first_word
    spans = [(u["speaker"], u["start"], u["end"]) for u in transcript["utterances"]]
    assert spans == [("A", 0.24, 1.6), ("B", 2.1, 3.1)]
    assert {w["speaker"] for w in transcript["words"]} == {"A", "B"}
    assert transcript["metadata"] == {"external_id": "call-55123"}
    assert transcript["error"] is None
    [event] = callboard.events(provider="assemblyai")
    assert event["type"] == "transcript.completed"
    assert event["data"] == transcript


def test_error_callback_fails_job_with_provider_error_text(
    callboard: CallboardProcess, assemblyai_fake: AssemblyAIFake
) -> None:
    job = submit(callboard)
    [response] = assemblyai_fake.callback(job["provider_job_id"], status="failed")
    assert response.status_code == 200, response.text
    done = callboard.wait_job(job["id"], "failed")
    transcript = done["transcript"]
    assert transcript["status"] == "failed"
    assert transcript["text"] == ""
    assert transcript["error"]["message"].startswith("Download error, unable to download")
    assert done["error"] == transcript["error"]
    [event] = callboard.events(type="transcript.failed")
    assert event["job_id"] == job["id"]


@pytest.mark.parametrize(
    "auth",
    [pytest.param(None, id="missing-header"), pytest.param("not-the-secret", id="wrong-header")],
)
def test_callback_without_the_right_auth_header_is_401_and_stores_nothing(
    callboard: CallboardProcess, assemblyai_fake: AssemblyAIFake, auth: str | None
) -> None:
    job = submit(callboard)
    fake_job = assemblyai_fake.finish(job["provider_job_id"], "completed")
    req = assemblyai_fake.callback_request(fake_job, "completed")
    headers = {k: v for k, v in req.headers.items() if k.lower() != AUTH_HEADER}
    if auth is not None:
        headers["X-Callboard-Auth"] = auth
    response = httpx.post(req.url, content=req.content, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert count(callboard, "callbacks") == 0
    assert callboard.job(job["id"])["status"] == "submitted"
    # the genuine callback is still taken afterwards
    assert httpx.post(req.url, content=req.content, headers=req.headers).status_code == 200
    callboard.wait_job(job["id"], "completed")


def test_result_endpoint_failing_still_completes_later(
    callboard: CallboardProcess, assemblyai_fake: AssemblyAIFake
) -> None:
    """The callback is acknowledged at once; the fetch is retried with backoff until the API answers."""
    job = submit(callboard)
    assemblyai_fake.result_failures = 3
    [response] = assemblyai_fake.callback(job["provider_job_id"])
    assert response.status_code == 200
    done = callboard.wait_job(job["id"], "completed", timeout=30)
    assert done["transcript"]["text"]
    fetches = [r for r in assemblyai_fake.requests if r.method == "GET"]
    assert len(fetches) == 4
    assert len(callboard.events()) == 1


def test_repeated_deliveries_are_duplicates_with_one_event(
    callboard: CallboardProcess, assemblyai_fake: AssemblyAIFake
) -> None:
    job = submit(callboard)
    first, *rest = assemblyai_fake.callback(job["provider_job_id"], times=4)
    assert first.json()["duplicate"] is False
    assert [r.json() for r in rest] == [{"id": first.json()["id"], "duplicate": True}] * 3
    callboard.wait_job(job["id"], "completed")
    assert len(callboard.events()) == 1
    assert count(callboard, "callbacks") == 1


def test_cli_submit_registers_options_and_metadata_and_completes(
    callboard: CallboardProcess, assemblyai_fake: AssemblyAIFake
) -> None:
    """The real console script submits while the server runs; the server takes the callback."""
    result = callboard.cli(
        "submit", "assemblyai", AUDIO, "--metadata", "external_id=call-7", "--option", "speaker_labels=true"
    )
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.split()[0]
    assert job_id.startswith("job_")
    assert "submitted" in result.stdout

    job = callboard.job(job_id)
    assert job["metadata"] == {"external_id": "call-7"}
    assert job["options"] == {"speaker_labels": True}
    fake_job = assemblyai_fake.jobs[job["provider_job_id"]]
    assert fake_job.request["speaker_labels"] is True
    assert fake_job.request["webhook_url"].startswith(f"{callboard.url}/callbacks/assemblyai/")
    assert fake_job.request["webhook_auth_header_value"]

    [response] = assemblyai_fake.callback(job["provider_job_id"])
    assert response.status_code == 200, response.text
    done = callboard.wait_job(job_id, "completed")
    assert done["transcript"]["metadata"] == {"external_id": "call-7"}


@pytest.mark.parametrize(
    ("setting", "code", "status"),
    [
        pytest.param("CALLBOARD_ASSEMBLYAI_API_KEY", "provider_rejected", 502, id="wrong-api-key"),
        pytest.param("CALLBOARD_ASSEMBLYAI_BASE_URL", "provider_unavailable", 503, id="unreachable-provider"),
    ],
)
def test_provider_refusing_or_unreachable_gives_json_error_and_one_line_cli_error(
    tmp_path: Path, database_url: str, assemblyai_fake: AssemblyAIFake, setting: str, code: str, status: int
) -> None:
    """A wrong key (the provider answers 401) or a closed port: a JSON error from the API, not a 500,
    and `callboard submit` prints one line and exits 1; the job is recorded as failed."""
    value = "wrong-key" if setting.endswith("API_KEY") else f"http://127.0.0.1:{free_port()}"
    fakes = {"assemblyai": assemblyai_fake}
    with CallboardProcess(tmp_path, database_url=database_url, fakes=fakes, env={setting: value}) as cb:
        response = cb.http.post("/v1/jobs", json={"provider": "assemblyai", "audio_url": AUDIO})
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code
        assert "assemblyai" in error["message"] or "transcript" in error["message"]

        result = cb.cli("submit", "assemblyai", AUDIO, timeout=20)
        assert result.returncode == 1
        assert result.stdout == ""
        assert_one_line_error(result.stderr)

        jobs = cb.http.get("/v1/jobs").json()["data"]
        assert [j["status"] for j in jobs] == ["failed", "failed"]
        assert all(j["error"]["code"] == code for j in jobs)
    assert not assemblyai_fake.jobs


def test_cli_submit_unknown_provider_exits_1_with_one_line(tmp_path: Path) -> None:
    result = run_cli("submit", "nosuch", AUDIO, env=base_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert_one_line_error(result.stderr)
    assert "nosuch" in result.stderr


def test_cli_submit_bad_metadata_pair_is_a_usage_error(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    result = run_cli("submit", "assemblyai", AUDIO, "--metadata", "novalue", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "KEY=VALUE" in result.stderr
