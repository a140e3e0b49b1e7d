"""End to end through a real `callboard serve` for recall, gladia, deepgram, revai, speechmatics, aitronos.

Each test submits a job (through the API, or the console script for recall and speechmatics), lets
the fake provider call back exactly as the provider documents it, and checks the job's end state,
its normalized transcript or error, and that it has exactly one event. Every test runs on SQLite
and on PostgreSQL. AssemblyAI and generic have their own modules.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from routes.signing import new_secret, secret_key, signature_header
from tests.e2e._support import count, query
from tests.fakes.aitronos import AitronosFake
from tests.fakes.base import CallbackRequest, FakeProvider, running
from tests.fakes.deepgram import DeepgramFake
from tests.fakes.gladia import GladiaFake
from tests.fakes.recall import RecallFake
from tests.fakes.revai import RevAIFake
from tests.fakes.speechmatics import SpeechmaticsFake
from tests.harness import CallboardProcess, wait_until

PROVIDERS = ("recall", "gladia", "deepgram", "revai", "speechmatics", "aitronos")
AUDIO = "https://storage.example.com/call-55123.mp3"
TEXT = "Thanks for calling Contoso. Hi, I need help."
METADATA = {"external_id": "call-1"}
#: what the fakes' recorded-shape content normalizes to: language, duration, confidence, speakers
EXPECTED: dict[str, tuple[str | None, float | None, float | None, list[str]]] = {
    "recall": ("en", None, None, ["Alice", "Bob"]),
    "gladia": ("en", 3.5, 0.9585, ["0", "1"]),
    "deepgram": ("en", 3.5, 0.9961, ["0", "1"]),
    "revai": ("en", 3.5, 0.9575, ["0", "1"]),
    "speechmatics": ("en", 4.0, 0.9575, ["S1", "S2"]),
    "aitronos": ("en", 3.5, 0.9575, ["A", "B"]),
}
FAILURES = {
    "recall": (
        "provider_connection_failed",
        "Recall reports the transcript failed (provider_connection_failed)",
    ),
    "gladia": ("400", "Audio file could not be downloaded"),
    "deepgram": (
        "REMOTE_CONTENT_ERROR",
        "Could not download the media: the remote server answered 404 Not Found.",
    ),
    "revai": ("download_failure", "Failed to download media file. Please check your url and file type"),
    "speechmatics": ("error", "unable to fetch audio: http status code 404"),
    "aitronos": ("AUDIO_DOWNLOAD_FAILED", "The audio file could not be downloaded."),
}


def new_fake(provider: str) -> FakeProvider:
    fakes: dict[str, Any] = {
        "recall": lambda: RecallFake(webhook_secret=new_secret()),
        "gladia": GladiaFake,
        "deepgram": DeepgramFake,
        "revai": RevAIFake,
        "speechmatics": SpeechmaticsFake,
        "aitronos": AitronosFake,
    }
    fake: FakeProvider = fakes[provider]()
    return fake


def start(tmp: Path, database_url: str, fake: Any, **env: str) -> CallboardProcess:
    cb = CallboardProcess(
        tmp,
        database_url=database_url,
        fakes={fake.name: fake},
        env={"CALLBOARD_AITRONOS_ORGANIZATION_ID": "org_contoso", **env},
    )
    cb.start()
    if fake.name == "recall":  # the workspace endpoint set in Recall's dashboard
        fake.webhook_url = f"{cb.url}/callbacks/recall"
    return cb


@pytest.fixture
def serve(
    tmp_path: Path, database_url: str, request: pytest.FixtureRequest
) -> Iterator[tuple[CallboardProcess, Any]]:
    with running(new_fake(request.param)) as fake:
        cb = start(tmp_path, database_url, fake)
        try:
            yield cb, fake
        finally:
            cb.__exit__()


def submit(cb: CallboardProcess, provider: str, **options: Any) -> dict[str, Any]:
    """Submit as an operator would: the console script for recall and speechmatics, the API otherwise."""
    if provider == "recall":
        provider_config = json.dumps(options.pop("provider", {"deepgram_async": {"language": "en"}}))
        job: dict[str, Any] = cb.cli_json(
            "submit", "recall", "--recording-id", "9c1d5e2a-0b7f-4d3e-8a61-5b2f0c7d9e14",
            "--option", f"provider={provider_config}", "--metadata", "external_id=call-1",
        )  # fmt: skip
    elif provider == "speechmatics":
        job = cb.cli_json(
            "submit", "speechmatics", AUDIO, "--option", "language=en", "--option", "diarization=speaker",
            "--metadata", "external_id=call-1",
        )  # fmt: skip
    else:
        body = {"provider": provider, "audio_url": AUDIO, "options": options, "metadata": METADATA}
        response = cb.http.post("/v1/jobs", json=body)
        assert response.status_code == 201, response.text
        job = response.json()
    assert job["status"] == "submitted"
    assert job["provider_job_id"]
    return job


def check_registration(cb: CallboardProcess, fake: Any, job: dict[str, Any]) -> None:
    """What the provider was told: where to call back, and the job's correlation."""
    provider, fake_job = fake.name, fake.jobs[job["provider_job_id"]]
    if provider == "recall":  # nothing per job: the workspace endpoint; the job id rides in metadata
        assert fake_job.request["provider"] == {"deepgram_async": {"language": "en"}}
        assert fake_job.extra["recording_id"] == "9c1d5e2a-0b7f-4d3e-8a61-5b2f0c7d9e14"
        assert fake_job.metadata == {**METADATA, "callboard_job_id": job["id"]}
        return
    assert fake_job.callback_url.startswith(f"{cb.url}/callbacks/{provider}/")
    if provider == "deepgram":
        assert fake_job.callback_headers["authorization"].startswith("Basic ")
        assert fake_job.metadata["callboard_job_id"] == job["id"]
    elif provider in ("revai", "speechmatics"):
        assert fake_job.callback_headers["Authorization"].startswith("Bearer ")
    elif provider == "gladia":
        assert fake_job.metadata == {**METADATA, "callboard_job_id": job["id"]}
    elif provider == "aitronos":
        assert fake_job.request["organization_id"] == "org_contoso"


def post(req: CallbackRequest, **changes: Any) -> httpx.Response:
    fields = {"method": req.method, "url": req.url, "headers": req.headers, "content": req.content, **changes}
    return httpx.request(
        fields["method"], fields["url"], headers=fields["headers"], content=fields["content"]
    )


def forged(fake: Any, req: CallbackRequest) -> CallbackRequest:
    """The same callback with a wrong credential, as each provider carries it."""
    headers = dict(req.headers)
    if fake.name == "recall":  # signed with another workspace secret
        msg_id, ts = headers["webhook-id"], int(headers["webhook-timestamp"])
        headers["webhook-signature"] = signature_header([secret_key(new_secret())], msg_id, ts, req.content)
    elif fake.name == "deepgram":  # the basic-auth password of the callback URL
        headers["authorization"] = "Basic " + base64.b64encode(b"callboard:not-the-secret").decode()
    elif fake.name in ("revai", "speechmatics"):  # the registered Authorization header
        headers["Authorization"] = "Bearer not-the-secret"
    else:  # gladia, aitronos: the per-job URL token is the only credential
        base, _, token = req.url.rpartition("/")
        return CallbackRequest(req.method, f"{base}/{token[:-4]}{'AAAA' if token[-4:] != 'AAAA' else 'BBBB'}",
                               headers, req.content)  # fmt: skip
    return CallbackRequest(req.method, req.url, headers, req.content)


def check_one_event(cb: CallboardProcess, provider: str, job: dict[str, Any], event_type: str) -> None:
    [event] = cb.events(provider=provider)
    assert event["type"] == event_type
    assert event["job_id"] == job["id"]
    assert event["data"] == job["transcript"]


@pytest.mark.parametrize("serve", PROVIDERS, indirect=True)
def test_completed_callback_normalizes_the_transcript_and_repeats_are_duplicates(
    serve: tuple[CallboardProcess, Any],
) -> None:
    cb, fake = serve
    provider = fake.name
    job = submit(cb, provider)
    check_registration(cb, fake, job)

    first, *repeats = fake.callback(job["provider_job_id"], status="completed", times=3)
    assert first.status_code == 200, first.text
    assert first.json()["duplicate"] is False
    assert [r.json() for r in repeats] == [{"id": first.json()["id"], "duplicate": True}] * 2

    done = cb.wait_job(job["id"], "completed")
    transcript = done["transcript"]
    language, duration, confidence, speakers = EXPECTED[provider]
    assert transcript["status"] == "completed"
    assert transcript["provider"] == provider
    assert transcript["provider_job_id"] == job["provider_job_id"]
    assert transcript["job_id"] == job["id"]
    assert transcript["text"] == TEXT
    assert (transcript["language"], transcript["duration"], transcript["confidence"]) == (
        language,
        duration,
        confidence,
    )
    assert [u["speaker"] for u in transcript["utterances"]] == speakers
    assert [u["text"] for u in transcript["utterances"]] == [
        "Thanks for calling Contoso.",
        "Hi, I need help.",
    ]
    assert len(transcript["words"]) == 8
    first_word = transcript["words"][0]
    assert (first_word["word"], first_word["start"], first_word["end"], first_word["speaker"]) == (
        "Thanks", 0.24, 0.52, speakers[0]
    )  # fmt: skip
    assert transcript["metadata"] == METADATA
    assert transcript["error"] is None
    check_one_event(cb, provider, done, "transcript.completed")
    assert count(cb, "callbacks") == 1


@pytest.mark.parametrize("serve", PROVIDERS, indirect=True)
def test_failed_callback_fails_the_job_with_the_provider_error(serve: tuple[CallboardProcess, Any]) -> None:
    cb, fake = serve
    provider = fake.name
    job = submit(cb, provider)
    [response] = fake.callback(job["provider_job_id"], status="failed")
    assert response.status_code == 200, response.text

    done = cb.wait_job(job["id"], "failed")
    transcript = done["transcript"]
    assert transcript["status"] == "failed"
    assert transcript["text"] == ""
    assert transcript["words"] == transcript["utterances"] == []
    assert (transcript["error"]["code"], transcript["error"]["message"]) == FAILURES[provider]
    assert done["error"] == transcript["error"]
    assert transcript["metadata"] == METADATA
    check_one_event(cb, provider, done, "transcript.failed")
    # a provider's retry of the failure changes nothing
    [again] = fake.callback(job["provider_job_id"], status="failed")
    assert again.json() == {"id": response.json()["id"], "duplicate": True}
    assert len(cb.events()) == 1


@pytest.mark.parametrize("serve", PROVIDERS, indirect=True)
def test_wrong_credential_is_401_and_stores_nothing(serve: tuple[CallboardProcess, Any]) -> None:
    cb, fake = serve
    job = submit(cb, fake.name)
    req = fake.callback_request(fake.finish(job["provider_job_id"], "completed"), "completed")

    refused = post(forged(fake, req))
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "unauthorized"
    assert count(cb, "callbacks") == 0
    assert cb.job(job["id"])["status"] == "submitted"
    # the genuine callback is taken afterwards
    assert post(req).status_code == 200
    cb.wait_job(job["id"], "completed")
    assert len(cb.events()) == 1


@pytest.mark.parametrize("serve", ["recall"], indirect=True)
def test_recall_processing_is_acknowledged_and_ignored(serve: tuple[CallboardProcess, Any]) -> None:
    cb, fake = serve
    job = submit(cb, "recall")
    [processing] = fake.callback(job["provider_job_id"], status="processing")
    assert processing.status_code == 200, processing.text
    callback_id = processing.json()["id"]
    wait_until(
        lambda: query(cb, "SELECT status FROM callbacks WHERE id = ?", callback_id)[0]["status"] == "ignored",
        what="the processing webhook to be settled as ignored",
    )
    assert cb.job(job["id"])["status"] == "submitted"
    assert cb.events() == []

    [done] = fake.callback(job["provider_job_id"], status="completed")
    assert done.json()["duplicate"] is False
    finished = cb.wait_job(job["id"], "completed")
    check_one_event(cb, "recall", finished, "transcript.completed")


@pytest.mark.parametrize("serve", ["recall"], indirect=True)
def test_recall_transcript_never_submitted_creates_a_job_and_its_event(
    serve: tuple[CallboardProcess, Any],
) -> None:
    """A transcript made in Recall's dashboard (legacy `svix-*` headers here) is adopted as a new job."""
    cb, fake = serve
    foreign = fake.add_job(metadata={"team": "sales"})
    first, again = fake.callback(foreign.id, status="completed", times=2, header_family="svix")
    assert first.status_code == 200, first.text
    assert again.json() == {"id": first.json()["id"], "duplicate": True}

    job = wait_until(
        lambda: next(iter(cb.http.get("/v1/jobs", params={"provider": "recall"}).json()["data"]), None),
        what="the adopted job",
    )
    assert job["provider_job_id"] == foreign.id
    done = cb.wait_job(job["id"], "completed")
    assert done["transcript"]["text"] == TEXT
    assert done["transcript"]["provider_job_id"] == foreign.id
    assert done["transcript"]["metadata"] == {"team": "sales"}
    check_one_event(cb, "recall", done, "transcript.completed")
    assert count(cb, "jobs") == 1


@pytest.mark.parametrize("serve", ["gladia"], indirect=True)
def test_gladia_callback_with_put(serve: tuple[CallboardProcess, Any]) -> None:
    cb, fake = serve
    job = submit(cb, "gladia", callback_method="PUT")
    fake_job = fake.jobs[job["provider_job_id"]]
    assert fake_job.request["callback_config"]["method"] == "PUT"
    assert "callback_method" not in fake_job.request
    req = fake.callback_request(fake.finish(job["provider_job_id"], "completed"), "completed")
    assert req.method == "PUT"
    assert post(req).status_code == 200
    done = cb.wait_job(job["id"], "completed")
    assert done["transcript"]["text"] == TEXT
    [stored] = query(cb, "SELECT method FROM callbacks")
    assert stored["method"] == "PUT"
    check_one_event(cb, "gladia", done, "transcript.completed")


def long_call(utterances: int) -> dict[str, Any]:
    """A Gladia result for a long call: `utterances` turns of 12 words, two speakers."""
    turns: list[dict[str, Any]] = []
    at = 0.0
    for i in range(utterances):
        words: list[dict[str, Any]] = []
        for j in range(12):
            word = f"word{i}x{j}" + ("." if j == 11 else "")
            words.append({"word": (" " if j else "") + word, "start": round(at, 2), "end": round(at + 0.3, 2),
                          "confidence": 0.9})  # fmt: skip
            at += 0.35
        turns.append({"start": words[0]["start"], "end": words[-1]["end"], "confidence": 0.9, "channel": 0,
                      "speaker": i % 2, "language": "en", "text": "".join(w["word"] for w in words).strip(),
                      "words": words})  # fmt: skip
    full = " ".join(t["text"] for t in turns)
    return {
        "metadata": {"audio_duration": round(at, 2), "number_of_distinct_channels": 1},
        "transcription": {"full_transcript": full, "languages": ["en"], "utterances": turns},
    }


@pytest.mark.parametrize("serve", ["gladia"], indirect=True)
def test_gladia_multi_megabyte_callback_is_taken_whole(
    serve: tuple[CallboardProcess, Any], tmp_path: Path
) -> None:
    """Gladia's callback embeds the whole result; a long call is several MB (the default limit is 25 MB)."""
    cb, fake = serve
    cb.terminate()  # restart with the production body limit instead of the harness's 1 MB
    cb.env.pop("CALLBOARD_MAX_BODY_BYTES")
    cb.start()
    job = submit(cb, "gladia")
    req = fake.callback_request(fake.finish(job["provider_job_id"], "completed"), "completed")
    body = json.loads(req.content)
    body["payload"] = long_call(2500)
    content = json.dumps(body).encode()
    assert len(content) > 3_000_000

    started = time.monotonic()
    response = post(req, content=content)
    assert response.status_code == 200, response.text
    done = cb.wait_job(job["id"], "completed", timeout=30)
    transcript = done["transcript"]
    assert len(transcript["utterances"]) == 2500
    assert len(transcript["words"]) == 30000
    assert transcript["text"] == body["payload"]["transcription"]["full_transcript"]
    assert transcript["words"][-1]["word"] == "word2499x11."
    assert time.monotonic() - started < 20
    [stored] = query(cb, "SELECT body FROM callbacks")
    assert bytes(stored["body"]) == content
    check_one_event(cb, "gladia", done, "transcript.completed")
