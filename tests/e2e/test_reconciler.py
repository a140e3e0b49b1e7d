"""The reconciler end to end: jobs whose callback never comes, through a real `callboard serve`.

With CALLBOARD_RECONCILE_AFTER=1 a job still `submitted` one second after submission is polled at
the fake provider and finishes through the same normalization path as a callback, with one event.
Deepgram cannot be polled: its job fails with `callback_timeout`. A provider that is down, or still
working, is asked again with backoff until it answers. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from routes.signing import new_secret
from tests.e2e._support import count, query
from tests.fakes.aitronos import AitronosFake
from tests.fakes.assemblyai import AssemblyAIFake
from tests.fakes.base import FakeProvider, running
from tests.fakes.deepgram import DeepgramFake
from tests.fakes.generic import GenericFake
from tests.fakes.gladia import GladiaFake
from tests.fakes.recall import RecallFake
from tests.fakes.revai import RevAIFake
from tests.fakes.speechmatics import SpeechmaticsFake
from tests.harness import CallboardProcess, wait_until

AUDIO = "https://storage.example.com/call-55123.mp3"
TEXT = "Thanks for calling Contoso. Hi, I need help."
METADATA = {"external_id": "call-1"}
#: language and speakers of the fakes' content, normalized, as a callback would give them
POLLED = {
    "generic": ("en", ["0", "1"]),
    "assemblyai": ("en_us", ["A", "B"]),
    "recall": ("en", ["Alice", "Bob"]),
    "gladia": ("en", ["0", "1"]),
    "revai": ("en", ["0", "1"]),
    "speechmatics": ("en", ["S1", "S2"]),
    "aitronos": ("en", ["A", "B"]),
}
FAKES: dict[str, Any] = {
    "generic": lambda: GenericFake(webhook_secret=new_secret()),
    "assemblyai": AssemblyAIFake,
    "recall": lambda: RecallFake(webhook_secret=new_secret()),
    "gladia": GladiaFake,
    "deepgram": DeepgramFake,
    "revai": RevAIFake,
    "speechmatics": SpeechmaticsFake,
    "aitronos": AitronosFake,
}


@pytest.fixture
def serve(
    tmp_path: Path, database_url: str, request: pytest.FixtureRequest
) -> Iterator[tuple[CallboardProcess, Any]]:
    fake: FakeProvider = FAKES[request.param]()
    env = {"CALLBOARD_RECONCILE_AFTER": "1", "CALLBOARD_AITRONOS_ORGANIZATION_ID": "org_contoso"}
    with running(fake):
        with CallboardProcess(tmp_path, database_url=database_url, fakes={fake.name: fake}, env=env) as cb:
            if fake.name == "recall":
                fake.webhook_url = f"{cb.url}/callbacks/recall"
            yield cb, fake


def submit(cb: CallboardProcess, provider: str) -> dict[str, Any]:
    body: dict[str, Any] = {"provider": provider, "metadata": METADATA}
    if provider == "recall":
        body.update(recording_id="9c1d5e2a-0b7f-4d3e-8a61-5b2f0c7d9e14",
                    options={"provider": {"assembly_ai_async": {"language_code": "en"}}})  # fmt: skip
    else:
        body["audio_url"] = AUDIO
    response = cb.http.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    assert job["status"] == "submitted"
    return job


def polls(fake: Any, provider_job_id: str) -> int:
    """How many times the provider was asked about the job (any GET naming it)."""
    return sum(1 for r in fake.requests if r.method == "GET" and provider_job_id in r.path)


def reconcile_attempts(cb: CallboardProcess, job_id: str) -> int:
    return int(query(cb, "SELECT reconcile_attempts FROM jobs WHERE id = ?", job_id)[0]["reconcile_attempts"])


@pytest.mark.parametrize("serve", list(POLLED), indirect=True)
def test_job_without_callback_is_polled_and_completes_like_a_callback(
    serve: tuple[CallboardProcess, Any],
) -> None:
    cb, fake = serve
    provider = fake.name
    job = submit(cb, provider)
    fake.finish(job["provider_job_id"], "completed")  # done at the provider; the callback is lost

    done = cb.wait_job(job["id"], "completed", timeout=15)
    transcript = done["transcript"]
    language, speakers = POLLED[provider]
    assert transcript["provider"] == provider
    assert transcript["provider_job_id"] == job["provider_job_id"]
    assert transcript["job_id"] == job["id"]
    assert transcript["text"] == TEXT
    assert transcript["language"] == language
    assert [u["speaker"] for u in transcript["utterances"]] == speakers
    assert transcript["words"][0]["word"] == "Thanks"
    assert (transcript["words"][0]["start"], transcript["words"][0]["end"]) == (0.24, 0.52)
    assert transcript["metadata"] == METADATA
    [event] = cb.events()
    assert (event["type"], event["job_id"], event["data"]) == ("transcript.completed", job["id"], transcript)
    assert polls(fake, job["provider_job_id"]) >= 1
    assert count(cb, "callbacks") == 0

    # the callback turning up late is acknowledged and changes nothing
    [late] = fake.callback(job["provider_job_id"], status="completed")
    assert late.status_code == 200, late.text
    wait_until(
        lambda: (
            query(cb, "SELECT status FROM callbacks WHERE id = ?", late.json()["id"])[0]["status"]
            == "ignored"
        ),
        what="the late callback to be settled",
    )
    assert len(cb.events()) == 1
    assert cb.job(job["id"])["transcript"] == transcript


@pytest.mark.parametrize(
    ("serve", "code"),
    [pytest.param("assemblyai", "transcription_error", id="assemblyai"),
     pytest.param("speechmatics", "rejected", id="speechmatics")],
    indirect=["serve"],
)  # fmt: skip
def test_job_failed_at_the_provider_is_polled_and_fails(
    serve: tuple[CallboardProcess, Any], code: str
) -> None:
    cb, fake = serve
    job = submit(cb, fake.name)
    fake.finish(job["provider_job_id"], "failed")
    done = cb.wait_job(job["id"], "failed", timeout=15)
    assert done["error"]["code"] == code
    assert done["error"]["message"]
    assert done["transcript"]["text"] == ""
    [event] = cb.events(type="transcript.failed")
    assert event["job_id"] == job["id"]


@pytest.mark.parametrize("serve", ["deepgram"], indirect=True)
def test_deepgram_job_without_callback_fails_with_callback_timeout(
    serve: tuple[CallboardProcess, Any],
) -> None:
    """Deepgram has no API to fetch a result by request id: the job times out instead of being polled."""
    cb, fake = serve
    job = submit(cb, "deepgram")
    done = cb.wait_job(job["id"], "failed", timeout=15)
    assert done["error"]["code"] == "callback_timeout"
    assert "deepgram cannot be polled" in done["error"]["message"]
    assert done["transcript"]["provider_job_id"] == job["provider_job_id"]
    assert done["transcript"]["metadata"] == METADATA
    [event] = cb.events()
    assert (event["type"], event["job_id"]) == ("transcript.failed", job["id"])
    assert [r.path for r in fake.requests] == ["/v1/listen"]  # nothing was polled
    # Deepgram's own retry arriving after the timeout is acknowledged; the job keeps its one event
    [late] = fake.callback(job["provider_job_id"], status="completed")
    assert late.status_code == 200
    wait_until(lambda: count(cb, "callbacks") == 1, what="the late callback")
    time.sleep(0.5)
    assert len(cb.events()) == 1
    assert cb.job(job["id"])["status"] == "failed"


@pytest.mark.parametrize("serve", ["generic"], indirect=True)
def test_provider_down_while_polling_backs_off_and_finishes_later(
    serve: tuple[CallboardProcess, Any],
) -> None:
    """Two polls meet a 503; the reconciler waits 1 s, then 2 s, and the third poll finishes the job."""
    cb, fake = serve
    started = time.monotonic()
    job = submit(cb, "generic")
    fake.finish(job["provider_job_id"], "completed")
    fake.result_failures = 2

    done = cb.wait_job(job["id"], "completed", timeout=20)
    elapsed = time.monotonic() - started
    assert done["transcript"]["text"] == TEXT
    assert polls(fake, job["provider_job_id"]) == 3
    assert reconcile_attempts(cb, job["id"]) == 2
    assert elapsed >= 1 + 1 + 2 - 0.5  # first poll after RECONCILE_AFTER, then backoff 1 s and 2 s
    assert len(cb.events()) == 1


@pytest.mark.parametrize("serve", ["revai"], indirect=True)
def test_job_still_running_at_the_provider_is_asked_again_until_done(
    serve: tuple[CallboardProcess, Any],
) -> None:
    cb, fake = serve
    job = submit(cb, "revai")
    wait_until(
        lambda: polls(fake, job["provider_job_id"]) >= 2, timeout=15, what="two polls of the running job"
    )
    # the fake counts a poll as it arrives; the reconciler records it once the answer is back
    wait_until(lambda: reconcile_attempts(cb, job["id"]) >= 2, timeout=5, what="the second poll recorded")
    assert cb.job(job["id"])["status"] == "submitted"
    assert cb.events() == []
    attempts = reconcile_attempts(cb, job["id"])
    assert attempts >= 2

    fake.finish(job["provider_job_id"], "completed")
    done = cb.wait_job(job["id"], "completed", timeout=20)
    assert done["transcript"]["text"] == TEXT
    assert len(cb.events()) == 1
