"""`revai`: bearer auth header, job-object callbacks, monologue normalization, submit/poll over HTTP."""

from __future__ import annotations

import time

import httpx
import pytest

from receiver.exceptions import ProviderUnavailableError, UnusableBodyError, VerificationError
from receiver.model import Utterance, Word
from receiver.providers.base import Inbound, JobView, ProviderConfig, StoredCallback, SubmitRequest
from receiver.providers.revai import RevAI, normalize
from tests.fakes.base import fixture, fixture_bytes, running
from tests.fakes.revai import RevAIFake
from tests.fakes.sink import CallbackSink

RID = "Umx5c6F7pH7r"
TEXT = "Thanks for calling Contoso. Hi, I need help."
WORDS = [
    Word("Thanks", 0.24, 0.52, 0.98, "0"),
    Word("for", 0.52, 0.68, 0.97, "0"),
    Word("calling", 0.68, 1.04, 0.95, "0"),
    Word("Contoso", 1.04, 1.6, 0.91, "0"),
    Word("Hi", 2.1, 2.3, 0.99, "1"),
    Word("I", 2.42, 2.5, 0.96, "1"),
    Word("need", 2.5, 2.72, 0.97, "1"),
    Word("help", 2.72, 3.1, 0.93, "1"),
]
UTTERANCES = [
    Utterance("0", 0.24, 1.6, "Thanks for calling Contoso.", 0.9525),
    Utterance("1", 2.1, 3.1, "Hi, I need help.", 0.9625),
]
_UNUSED_CLIENT = httpx.AsyncClient()  # pure tests never make a request with it


def adapter(http: httpx.AsyncClient = _UNUSED_CLIENT, base_url: str = "http://revai.invalid") -> RevAI:
    return RevAI(ProviderConfig("revai", base_url, "test-key"), http)


def inbound(
    body: bytes, authorization: str | None = "Bearer s3cret", secret: str | None = "s3cret"
) -> Inbound:
    headers = {"authorization": authorization} if authorization is not None else {}
    return Inbound("revai", "POST", headers, {}, body, "job_01JDREVAI", secret)


def job_view(provider_job_id: str | None = RID) -> JobView:
    return JobView("job_01JDREVAI", "revai", provider_job_id, {}, {}, time.time())


def test_normalize_monologues() -> None:
    t = normalize(fixture("revai", "callback_transcribed.json")["job"], fixture("revai", "transcript.json"))
    assert (t.status, t.provider, t.provider_job_id, t.text) == ("completed", "revai", RID, TEXT)
    assert t.words == WORDS
    assert t.utterances == UTTERANCES
    assert (t.language, t.duration, t.confidence) == ("en", 3.5, 0.9575)
    assert t.completed_at == "2026-11-21T10:01:12Z"


def test_normalize_skips_empty_monologues_and_keeps_unknown_elements_in_text() -> None:
    transcript = fixture("revai", "transcript.json")
    transcript["monologues"][0]["elements"].append({"type": "punct", "value": " "})
    transcript["monologues"][0]["elements"].append({"type": "unknown", "value": "<inaudible>"})
    transcript["monologues"].append({"speaker": 2, "elements": []})
    t = normalize({"id": RID}, transcript)
    assert t.text == "Thanks for calling Contoso. <inaudible> Hi, I need help."
    assert len(t.utterances) == 2 and len(t.words) == 8
    assert (t.language, t.duration) == (None, None)


async def test_resolve_failed_notification_needs_no_fetch() -> None:
    body = fixture_bytes("revai", "callback_failed.json")
    t = await adapter().resolve(
        StoredCallback("cb_1", "revai", "job_1", RID, "POST", {}, {}, body), job_view()
    )
    assert t is not None and t.status == "failed" and t.error is not None
    assert (t.error.code, t.error.message) == (
        "download_failure",
        "Failed to download media file. Please check your url and file type",
    )


async def test_resolve_in_progress_and_other_job_types_are_ignored() -> None:
    for job in (
        {"id": RID, "status": "in_progress"},
        {"id": RID, "status": "completed", "type": "sentiment"},
    ):
        body = httpx.Request("POST", "/", json={"job": job}).content
        cb = StoredCallback("cb_1", "revai", "job_1", RID, "POST", {}, {}, body)
        assert await adapter().resolve(cb, job_view()) is None


async def test_resolve_refuses_another_job() -> None:
    body = fixture_bytes("revai", "callback_failed.json")
    with pytest.raises(UnusableBodyError):
        await adapter().resolve(
            StoredCallback("cb_1", "revai", "job_1", RID, "POST", {}, {}, body), job_view("x")
        )


def test_authenticate_and_identify() -> None:
    body = fixture_bytes("revai", "callback_transcribed.json")
    adapter().authenticate(inbound(body))
    identity = adapter().identify(inbound(body))
    assert (identity.dedupe_key, identity.provider_job_id, identity.job_hint) == (
        f"{RID}:transcribed",
        RID,
        "job_01JDREVAI",
    )


@pytest.mark.parametrize(
    ("authorization", "secret"),
    [
        pytest.param("Bearer wrong", "s3cret", id="wrong-token"),
        pytest.param(None, "s3cret", id="missing-header"),
        pytest.param("s3cret", "s3cret", id="no-bearer-prefix"),
        pytest.param("Bearer s3cret", None, id="no-per-job-url"),
    ],
)
def test_authenticate_bad_credentials_raise(authorization: str | None, secret: str | None) -> None:
    with pytest.raises(VerificationError):
        adapter().authenticate(inbound(b"{}", authorization, secret))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"id": "x", "status": "transcribed"}',
        b'{"job": {"id": "x"}}',
        b'{"job": {"status": "failed"}}',
    ],
)
def test_identify_malformed_raises(body: bytes) -> None:
    with pytest.raises(UnusableBodyError):
        adapter().identify(inbound(body))


async def test_round_trip_over_http(http: httpx.AsyncClient, sink: CallbackSink) -> None:
    with running(RevAIFake()) as fake:
        revai = adapter(http, fake.base_url)
        request = SubmitRequest(
            "job_01JDREVAI",
            f"{sink.url}/callbacks/revai/tok",
            "s3cret",
            "https://a.example/call.mp3",
            None,
            {"skip_diarization": False, "callback_url": "https://ignored.example"},
            {"external_id": "call-55123"},
        )
        rid = (await revai.submit(request)).provider_job_id
        sent = fake.jobs[rid].request
        assert sent["source_config"] == {"url": "https://a.example/call.mp3"}
        assert sent["notification_config"] == {
            "url": f"{sink.url}/callbacks/revai/tok",
            "auth_headers": {"Authorization": "Bearer s3cret"},
        }
        assert sent["metadata"] == "job_01JDREVAI" and "callback_url" not in sent
        assert sent["skip_diarization"] is False
        assert await revai.poll(job_view(rid)) is None
        await fake.acallback(rid, times=2)
        received = sink.last()
        revai.authenticate(received.inbound("revai", job_id="job_01JDREVAI", job_secret="s3cret"))
        identity = revai.identify(received.inbound("revai", job_id="job_01JDREVAI", job_secret="s3cret"))
        assert identity.dedupe_key == f"{rid}:transcribed"
        fake.result_failures = 1
        cb = received.stored("revai", job_id="job_01JDREVAI")
        with pytest.raises(ProviderUnavailableError):
            await revai.resolve(cb, job_view(rid))
        t = await revai.resolve(cb, job_view(rid))
        polled = await revai.poll(job_view(rid))
    assert t is not None and (t.provider_job_id, t.text, t.words, t.utterances) == (
        rid,
        TEXT,
        WORDS,
        UTTERANCES,
    )
    assert polled == t
    transcript_request = [r for r in fake.requests if r.path.endswith("/transcript")][-1]
    assert transcript_request.headers["accept"] == "application/vnd.rev.transcript.v1.0+json"


async def test_transcribed_notification_before_the_transcript_is_ready_is_retried(
    http: httpx.AsyncClient, sink: CallbackSink
) -> None:
    with running(RevAIFake()) as fake:
        job = fake.add_job(callback_url=f"{sink.url}/cb", callback_headers={"Authorization": "Bearer s"})
        await fake.acallback(job.id)
        fake.finish(job.id, "in_progress")  # the transcript endpoint answers 409 invalid-job-state
        with pytest.raises(ProviderUnavailableError, match="409"):
            await adapter(http, fake.base_url).resolve(sink.last().stored("revai"), job_view(job.id))
        fake.finish(job.id, "failed")
        failed = await adapter(http, fake.base_url).poll(job_view(job.id))
    assert failed is not None and failed.error is not None and failed.error.code == "download_failure"
