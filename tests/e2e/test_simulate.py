"""`callboard simulate` end to end: the real console script against a real `callboard serve`.

Every provider, both outcomes, both backends: the simulated callback is accepted (200) and stored,
and the job it recorded ends the way the callback says. Full-result providers carry the simulated
call in the callback; thin ones make the instance fetch the result from CALLBOARD_<P>_BASE_URL,
which points at the fake provider, taught the made-up id after the fact (the instance retries the
fetch with backoff until then).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks
import svix.webhooks

from receiver.simulate import Simulation, build, new_provider_job_id
from routes.signing import new_secret
from tests.e2e._support import assert_one_line_error, count, query
from tests.fakes.aitronos import AitronosFake
from tests.fakes.assemblyai import AssemblyAIFake
from tests.fakes.base import FakeProvider, running
from tests.fakes.deepgram import DeepgramFake
from tests.fakes.generic import GenericFake
from tests.fakes.gladia import GladiaFake
from tests.fakes.recall import RecallFake
from tests.fakes.revai import RevAIFake
from tests.fakes.speechmatics import SpeechmaticsFake
from tests.harness import CallboardProcess, base_env, run_cli
from tests.servers import free_port

SIMULATED_TEXT = "Thanks for calling Contoso support, this is Maya. Hi Maya, I'd like to check on my order."
FAKE_TEXT = "Thanks for calling Contoso. Hi, I need help."  # what the fakes' result endpoints serve
FULL_RESULT = ("generic", "gladia", "deepgram", "speechmatics")
THIN = ("assemblyai", "recall", "revai", "aitronos")
#: the error code each provider's failed job ends with (thin ones: as the fake's API reports it)
FAILURE_CODES = {
    "generic": "audio_unreachable",
    "gladia": "400",
    "deepgram": "REMOTE_CONTENT_ERROR",
    "speechmatics": "error",
    "assemblyai": "transcription_error",
    "recall": "provider_connection_failed",
    "revai": "download_failure",
    "aitronos": "AUDIO_DOWNLOAD_FAILED",
}
SPEAKERS = {"generic": ["0", "1"], "gladia": ["0", "1"], "deepgram": ["0", "1"], "speechmatics": ["S1", "S2"]}


def new_fake(provider: str) -> FakeProvider:
    fakes: dict[str, Any] = {
        "generic": lambda: GenericFake(webhook_secret=new_secret()),
        "assemblyai": AssemblyAIFake,
        "recall": lambda: RecallFake(webhook_secret=new_secret()),
        "gladia": GladiaFake,
        "deepgram": DeepgramFake,
        "revai": RevAIFake,
        "speechmatics": SpeechmaticsFake,
        "aitronos": AitronosFake,
    }
    fake: FakeProvider = fakes[provider]()
    return fake


@pytest.fixture
def serve(
    tmp_path: Path, database_url: str, request: pytest.FixtureRequest
) -> Iterator[tuple[CallboardProcess, Any]]:
    provider: str = request.param
    with running(new_fake(provider)) as fake:
        with CallboardProcess(tmp_path, database_url=database_url, fakes={provider: fake}) as cb:
            yield cb, fake


def simulate(cb: CallboardProcess, *args: str) -> dict[str, Any]:
    """Run the command in its human form; return the ids it printed and its whole output."""
    result = cb.cli("simulate", *args, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    callback = re.search(r"^callback\s+(cb_\w+)", result.stdout, re.M)
    job = re.search(r"^job\s+(job_\w+)\s+\(provider job (\S+?),", result.stdout, re.M)
    assert callback and job, result.stdout
    return {"callback_id": callback[1], "job_id": job[1], "provider_job_id": job[2], "stdout": result.stdout}


@pytest.mark.parametrize("serve", [*FULL_RESULT, *THIN], indirect=True)
def test_simulated_callback_is_stored_and_finishes_its_job(serve: tuple[CallboardProcess, Any]) -> None:
    cb, fake = serve
    provider = fake.name
    for status in ("completed", "failed"):
        out = simulate(cb, provider, "--status", status)
        assert out["stdout"].startswith(
            f"sent a simulated {provider} callback ({status}): POST {cb.url}/callbacks/"
        )
        fetches = provider in THIN and not (status == "failed" and provider in ("recall", "revai"))
        assert (f"CALLBOARD_{provider.upper()}_BASE_URL" in out["stdout"]) is fetches
        [stored] = query(
            cb, "SELECT provider, job_id, job_hint FROM callbacks WHERE id = ?", out["callback_id"]
        )
        assert stored["provider"] == provider
        assert out["job_id"] in (stored["job_id"], stored["job_hint"])
        if provider in THIN:  # the provider's API learns the made-up id only now: the fetch is retried
            fake.add_job(out["provider_job_id"], status=status)

        job = cb.wait_job(out["job_id"], status)
        transcript = job["transcript"]
        assert job["provider"] == provider
        assert job["provider_job_id"] == transcript["provider_job_id"] == out["provider_job_id"]
        assert transcript["metadata"] == {"simulated": "true"}
        if status == "failed":
            assert transcript["text"] == ""
            assert transcript["error"]["code"] == FAILURE_CODES[provider]
            assert transcript["error"]["message"]
            continue
        assert transcript["error"] is None
        if provider in FULL_RESULT:
            assert transcript["text"] == SIMULATED_TEXT
            assert transcript["language"] == "en"
            assert [u["speaker"] for u in transcript["utterances"]] == SPEAKERS[provider]
            assert transcript["words"][0] == {
                "word": "Thanks",
                "start": 0.32,
                "end": 0.63,
                "confidence": 0.975,
                "speaker": SPEAKERS[provider][0],
            }
            assert transcript["utterances"][1]["text"] == "Hi Maya, I'd like to check on my order."
        else:
            assert transcript["text"] == FAKE_TEXT
    events = cb.events(provider=provider)
    assert sorted(e["type"] for e in events) == ["transcript.completed", "transcript.failed"]
    assert count(cb, "callbacks") == 2


@pytest.mark.parametrize("serve", ["deepgram"], indirect=True)
def test_json_output_and_explicit_target(serve: tuple[CallboardProcess, Any]) -> None:
    """`--target` overrides CALLBOARD_PUBLIC_URL (here a closed port); `--json` prints one document."""
    cb, _ = serve
    env = {**cb.env, "CALLBOARD_PUBLIC_URL": f"http://127.0.0.1:{free_port()}"}
    result = run_cli(
        "simulate", "deepgram", "--target", cb.url + "/", "--json", env=env, cwd=cb.tmp, timeout=30
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["provider"] == "deepgram"
    assert out["status"] == "completed"
    assert out["callback_id"].startswith("cb_")
    assert out["duplicate"] is False
    assert out["endpoint"] == f"{cb.url}/callbacks/deepgram/<token>"
    assert out["fetches_from"] is None
    assert cb.wait_job(out["job_id"], "completed")["transcript"]["text"] == SIMULATED_TEXT


@pytest.mark.parametrize("serve", ["generic"], indirect=True)
def test_unreachable_target_is_one_line_and_the_job_is_marked_failed(
    serve: tuple[CallboardProcess, Any],
) -> None:
    cb, _ = serve
    result = cb.cli("simulate", "generic", "--target", f"http://127.0.0.1:{free_port()}", timeout=30)
    assert result.returncode == 1
    assert result.stdout == ""
    assert_one_line_error(result.stderr)
    assert "cannot reach" in result.stderr
    [job] = cb.http.get("/v1/jobs").json()["data"]
    assert job["status"] == "failed"
    assert job["error"]["code"] == "simulation_failed"
    assert job["metadata"] == {"simulated": "true"}
    assert cb.events() == []


@pytest.mark.parametrize(
    ("serve", "setting"),
    [
        pytest.param("generic", "CALLBOARD_SECRET_KEY", id="generic-other-secret-key"),
        pytest.param("deepgram", "CALLBOARD_SECRET_KEY", id="deepgram-other-secret-key"),
        pytest.param("recall", "CALLBOARD_RECALL_WEBHOOK_SECRET", id="recall-other-webhook-secret"),
    ],
    indirect=["serve"],
)
def test_instance_refusing_the_credentials_is_401_in_one_line(
    serve: tuple[CallboardProcess, Any], setting: str
) -> None:
    """A CLI configured with other secrets than the instance: the instance answers 401, stores nothing."""
    cb, fake = serve
    value = new_secret() if setting.endswith("WEBHOOK_SECRET") else "not-the-instance-key"
    env = {**cb.env, setting: value}
    result = run_cli("simulate", fake.name, env=env, cwd=cb.tmp, timeout=30)
    assert result.returncode == 1
    assert_one_line_error(result.stderr)
    assert "HTTP 401" in result.stderr
    assert count(cb, "callbacks") == 0
    [job] = cb.http.get("/v1/jobs").json()["data"]
    assert job["status"] == "failed"
    assert job["error"]["code"] == "simulation_failed"


def test_recall_without_webhook_secret_is_a_clear_error_and_records_nothing(
    tmp_path: Path, database_url: str
) -> None:
    env = base_env(tmp_path, database_url=database_url)
    result = run_cli("simulate", "recall", env=env, cwd=tmp_path, timeout=30)
    assert result.returncode == 1
    assert_one_line_error(result.stderr)
    assert "CALLBOARD_RECALL_WEBHOOK_SECRET is not set" in result.stderr
    assert count(database_url, "jobs") == 0


def test_unknown_provider_exits_1_and_bad_status_is_a_usage_error(tmp_path: Path, database_url: str) -> None:
    env = base_env(tmp_path, database_url=database_url)
    unknown = run_cli("simulate", "nosuch", env=env, cwd=tmp_path, timeout=30)
    assert unknown.returncode == 1
    assert_one_line_error(unknown.stderr)
    assert "nosuch" in unknown.stderr
    bad = run_cli("simulate", "generic", "--status", "maybe", env=env, cwd=tmp_path, timeout=30)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert count(database_url, "jobs") == 0


@pytest.mark.parametrize("provider", ["recall", "generic"])
def test_signed_simulations_verify_with_the_reference_libraries(provider: str) -> None:
    """Recall's (Svix) and generic's Standard Webhooks signatures, checked as any consumer would."""
    secret = new_secret()
    sim = Simulation(
        provider=provider, status="completed", job_id="job_1", provider_job_id=new_provider_job_id(provider),
        url="http://127.0.0.1:8000/callbacks/x", job_secret="s", webhook_secret=secret,
        metadata={"simulated": "true"}, now=time.time(),
    )  # fmt: skip
    request = build(sim)
    assert standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    svix.webhooks.Webhook(secret).verify(request.body, request.headers)  # raises when it does not verify
    assert request.headers["webhook-id"].startswith("msg_")
