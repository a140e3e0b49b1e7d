"""`callboard serve` as an operator runs it: servers, shutdown, admin auth, probes, logs, redaction."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx

from tests.e2e._support import query
from tests.fakes.assemblyai import AssemblyAIFake
from tests.fakes.generic import GenericFake
from tests.harness import CallboardProcess

ADMIN_TOKEN = "admin-token-for-tests-0123456789"


def submit(client: httpx.Client, provider: str) -> dict[str, Any]:
    response = client.post("/v1/jobs", json={"provider": provider, "audio_url": "https://example.com/a.wav"})
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def test_hypercorn_serves_a_callback_and_exits_0_on_sigterm(
    tmp_path: Path, database_url: str, generic_fake: GenericFake
) -> None:
    fakes = {"generic": generic_fake}
    cb = CallboardProcess(tmp_path, database_url=database_url, fakes=fakes, args=("--server", "hypercorn"))
    with cb:
        job = submit(cb.http, "generic")
        [response] = generic_fake.callback(job["provider_job_id"])
        assert response.status_code == 200, response.text
        assert response.json()["duplicate"] is False
        assert cb.wait_job(job["id"], "completed")["transcript"]["text"]
        assert cb.terminate(timeout=15) == 0
    events = [line["event"] for line in cb.log_lines()]
    assert "callboard.started" in events
    assert "callboard.stopped" in events


def test_uvicorn_sigterm_runs_the_clean_shutdown(tmp_path: Path) -> None:
    """uvicorn finishes the lifespan shutdown, then re-raises SIGTERM on itself (its documented
    behaviour since 0.29), so the exit status is the signal's, after a clean stop."""
    cb = CallboardProcess(tmp_path)
    with cb:
        assert cb.terminate(timeout=15) in (0, -signal.SIGTERM)
    assert "callboard.stopped" in [line["event"] for line in cb.log_lines()]


def test_admin_token_guards_v1_but_not_callbacks(
    tmp_path: Path, database_url: str, generic_fake: GenericFake
) -> None:
    env, fakes = {"CALLBOARD_ADMIN_TOKEN": ADMIN_TOKEN}, {"generic": generic_fake}
    with CallboardProcess(tmp_path, database_url=database_url, fakes=fakes, env=env) as cb:
        missing = cb.http.get("/v1/jobs")
        wrong = cb.http.get("/v1/jobs", headers={"authorization": "Bearer not-the-token"})
        basic = cb.http.get("/v1/jobs", headers={"authorization": f"Basic {ADMIN_TOKEN}"})
        for response in (missing, wrong, basic):
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/json"
            assert response.json()["error"]["code"] == "unauthorized"
        assert missing.headers["www-authenticate"] == "Bearer"

        admin = httpx.Client(base_url=cb.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        with admin:
            assert admin.get("/v1/jobs").status_code == 200
            job = submit(admin, "generic")
            # the provider knows nothing of the admin token: the callback is authenticated by its own means
            [response] = generic_fake.callback(job["provider_job_id"])
            assert response.status_code == 200, response.text
            done = admin.get(f"/v1/jobs/{job['id']}")
            assert done.status_code == 200
        assert cb.http.get("/healthz").status_code == 200


def test_health_readiness_metrics_and_openapi(callboard: CallboardProcess, generic_fake: GenericFake) -> None:
    job = submit(callboard.http, "generic")
    generic_fake.callback(job["provider_job_id"], times=2)

    assert callboard.http.get("/healthz").json() == {"status": "ok"}
    ready = callboard.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok"}

    metrics = callboard.http.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE callboard_callbacks_total counter" in metrics.text
    assert 'callboard_callbacks_total{outcome="stored",provider="generic"} 1.0' in metrics.text
    assert 'callboard_callbacks_total{outcome="duplicate",provider="generic"} 1.0' in metrics.text

    spec = callboard.http.get("/openapi.json")
    assert spec.status_code == 200
    document = spec.json()
    assert document["openapi"].startswith("3.")
    assert {"/v1/jobs", "/v1/events", "/callbacks/{provider}/{token}", "/healthz"} <= set(document["paths"])


def test_one_info_line_per_callback_and_no_secrets_in_logs(
    callboard: CallboardProcess, generic_fake: GenericFake, assemblyai_fake: AssemblyAIFake
) -> None:
    """Five callback requests (stored, duplicate, refused, for two providers) make exactly one
    info line each: a stored callback its `callback.processed` line, the others (answered as a
    duplicate, refused) their `callback` line; neither the per-job auth header value nor the
    generic webhook secret is ever written, even after processing (checked in the whole log, once
    the server has stopped: lines logged on the event loop are written a few milliseconds later,
    together)."""
    generic = submit(callboard.http, "generic")
    assembly = submit(callboard.http, "assemblyai")
    generic_fake.callback(generic["provider_job_id"], times=2)
    assemblyai_fake.callback(assembly["provider_job_id"], times=2)
    req = assemblyai_fake.callback_request(assemblyai_fake.jobs[assembly["provider_job_id"]], "completed")
    refused = httpx.post(req.url, content=req.content, headers={"content-type": "application/json"})
    assert refused.status_code == 401
    callboard.wait_job(generic["id"], "completed")
    callboard.wait_job(assembly["id"], "completed")

    callboard.terminate()
    lines = [line for line in callboard.log_lines() if line.get("event") in ("callback", "callback.processed")]
    assert all(line["level"] == "info" for line in lines)
    outcomes = sorted((line["event"], line["provider"], line["job"], line["outcome"]) for line in lines)
    assert outcomes == sorted(
        [
            ("callback.processed", "generic", generic["id"], "finished"),
            ("callback", "generic", generic["id"], "duplicate"),
            ("callback.processed", "assemblyai", assembly["id"], "finished"),
            ("callback", "assemblyai", assembly["id"], "duplicate"),
            ("callback", "assemblyai", assembly["id"], "unauthorized"),
        ]
    )
    assert all(isinstance(line["latency_ms"], float | int) and line["latency_ms"] >= 0 for line in lines)

    logs = callboard.logs()
    job_secret = assemblyai_fake.jobs[assembly["provider_job_id"]].secret
    assert job_secret and job_secret not in logs
    assert generic_fake.webhook_secret
    assert generic_fake.webhook_secret not in logs
    assert generic_fake.webhook_secret.removeprefix("whsec_") not in logs
    assert callboard.env["CALLBOARD_SECRET_KEY"] not in logs


def test_stored_callback_headers_have_credentials_redacted(
    callboard: CallboardProcess, assemblyai_fake: AssemblyAIFake
) -> None:
    job = submit(callboard.http, "assemblyai")
    fake_job = assemblyai_fake.finish(job["provider_job_id"], "completed")
    req = assemblyai_fake.callback_request(fake_job, "completed")
    extra = {"authorization": "Bearer leaked-credential", "cookie": "session=leaked"}
    response = httpx.post(req.url, content=req.content, headers={**req.headers, **extra})
    assert response.status_code == 200, response.text

    [row] = query(callboard, "SELECT headers FROM callbacks WHERE id = ?", response.json()["id"])
    headers = json.loads(row["headers"])
    assert headers["x-callboard-auth"] == "[redacted]"
    assert headers["authorization"] == "[redacted]"
    assert headers["cookie"] == "[redacted]"
    assert headers["content-type"] == "application/json"
    assert fake_job.secret and fake_job.secret not in row["headers"]
    assert "leaked" not in row["headers"]


def test_a_stored_callback_is_logged_on_arrival_at_debug_level(
    tmp_path: Path, database_url: str, generic_fake: GenericFake
) -> None:
    """At `CALLBOARD_LOG_LEVEL=debug` the handler's own line for a stored callback is written too
    (at info its line is the processor's `callback.processed`)."""
    with CallboardProcess(
        tmp_path, database_url=database_url, fakes={"generic": generic_fake}, env={"CALLBOARD_LOG_LEVEL": "debug"}
    ) as cb:
        job = submit(cb.http, "generic")
        generic_fake.callback(job["provider_job_id"])
        cb.wait_job(job["id"], "completed")
        cb.terminate()
        [line] = [line for line in cb.log_lines() if line.get("event") == "callback"]
    assert (line["level"], line["provider"], line["job"], line["outcome"]) == ("debug", "generic", job["id"], "stored")
    assert isinstance(line["latency_ms"], float | int) and line["latency_ms"] >= 0
