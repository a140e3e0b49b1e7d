"""`recall`: Svix-signed workspace webhooks, the artifact + download fetch, normalization, submit/poll."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
import standardwebhooks
import svix.webhooks

from receiver.exceptions import ProviderUnavailableError, UnusableBodyError, VerificationError
from receiver.model import Utterance, Word
from receiver.providers.base import Inbound, JobView, ProviderConfig, StoredCallback, SubmitRequest
from receiver.providers.recall import Recall, normalize
from routes.signing import new_secret, secret_key, signature_header
from tests.fakes.base import fixture, fixture_bytes, running
from tests.fakes.recall import RecallFake
from tests.fakes.sink import CallbackSink

SECRET = new_secret()
TID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
TEXT = "Thanks for calling Contoso. Hi, I need help."
WORDS = [
    Word("Thanks", 0.24, 0.52, None, "Alice"),
    Word("for", 0.52, 0.68, None, "Alice"),
    Word("calling", 0.68, 1.04, None, "Alice"),
    Word("Contoso.", 1.04, 1.6, None, "Alice"),
    Word("Hi,", 2.1, 2.3, None, "Bob"),
    Word("I", 2.42, 2.5, None, "Bob"),
    Word("need", 2.5, 2.72, None, "Bob"),
    Word("help.", 2.72, None, None, "Bob"),
]
UTTERANCES = [
    Utterance("Alice", 0.24, 1.6, "Thanks for calling Contoso.", None),
    Utterance("Bob", 2.1, 2.72, "Hi, I need help.", None),
]


_UNUSED_CLIENT = httpx.AsyncClient()  # pure tests never make a request with it


def adapter(
    http: httpx.AsyncClient = _UNUSED_CLIENT,
    *,
    base_url: str = "http://recall.invalid",
    secret: str | None = SECRET,
    clock: Callable[[], float] = time.time,
) -> Recall:
    return Recall(ProviderConfig("recall", base_url, "test-key", secret), http, clock=clock)


def signed(body: bytes, *, secret: str = SECRET, family: str = "webhook", ts: int | None = None) -> Inbound:
    ts = int(time.time()) if ts is None else ts
    sig = signature_header([secret_key(secret)], "msg_2Kq9", ts, body)
    headers = {f"{family}-id": "msg_2Kq9", f"{family}-timestamp": str(ts), f"{family}-signature": sig}
    return Inbound("recall", "POST", headers, {}, body)


def _stored(body: bytes) -> StoredCallback:
    return StoredCallback("cb_1", "recall", None, TID, "POST", {}, {}, body)


def job_view(provider_job_id: str | None = TID) -> JobView:
    return JobView("job_01JDRECALL", "recall", provider_job_id, {}, {}, time.time())


# -- normalization ----------------------------------------------------------------------------


def test_normalize_download_gives_segments_in_time_order() -> None:
    t = normalize(
        TID, fixture("recall", "download.json"), language="en", metadata={"external_id": "call-55123"}
    )
    assert (t.status, t.provider, t.provider_job_id) == ("completed", "recall", TID)
    assert t.text == TEXT
    assert t.words == WORDS
    assert t.utterances == UTTERANCES
    assert (t.language, t.duration, t.confidence) == ("en", None, None)
    assert t.metadata == {"external_id": "call-55123"}


def test_normalize_unnamed_participant_uses_id_and_sorts_segments() -> None:
    segments = list(reversed(fixture("recall", "download.json")))
    segments[0]["participant"]["name"] = None
    segments.append({"participant": {"id": 300, "name": None}, "words": []})
    t = normalize(TID, segments)
    assert [u.speaker for u in t.utterances] == ["Alice", "200"]
    assert t.text == TEXT


def test_normalize_rejects_a_non_list() -> None:
    with pytest.raises(UnusableBodyError):
        normalize(TID, {"words": []})


# -- authenticate / identify ------------------------------------------------------------------


@pytest.mark.parametrize("family", ["webhook", "svix"])
def test_authenticate_accepts_both_header_families(family: str) -> None:
    body = fixture_bytes("recall", "webhook_transcript_done.json")
    adapter().authenticate(signed(body, family=family))


def test_authenticate_accepts_any_of_several_secrets() -> None:
    body = fixture_bytes("recall", "webhook_transcript_done.json")
    adapter(secret=f"{new_secret()} {SECRET}").authenticate(signed(body))


@pytest.mark.parametrize(
    "inbound",
    [
        pytest.param(signed(b'{"event":"transcript.done"}', secret=new_secret()), id="wrong-secret"),
        pytest.param(signed(b'{"event":"transcript.done"}', ts=int(time.time()) - 600), id="stale"),
        pytest.param(Inbound("recall", "POST", {}, {}, b'{"event":"transcript.done"}'), id="unsigned"),
    ],
)
def test_authenticate_bad_signature_raises(inbound: Inbound) -> None:
    with pytest.raises(VerificationError):
        adapter().authenticate(inbound)


def test_authenticate_tampered_body_raises() -> None:
    inbound = signed(fixture_bytes("recall", "webhook_transcript_done.json"))
    tampered = Inbound("recall", "POST", inbound.headers, {}, inbound.body.replace(b"done", b"fail"))
    with pytest.raises(VerificationError):
        adapter().authenticate(tampered)


def test_authenticate_uses_the_injected_clock() -> None:
    inbound = signed(b"{}", ts=1_700_000_000)
    adapter(clock=lambda: 1_700_000_100.0).authenticate(inbound)
    with pytest.raises(VerificationError, match="too old"):
        adapter(clock=lambda: 1_700_000_400.0).authenticate(inbound)


def test_authenticate_without_secret_says_which_setting_is_missing() -> None:
    with pytest.raises(VerificationError, match="CALLBOARD_RECALL_WEBHOOK_SECRET"):
        adapter(secret=None).authenticate(signed(b"{}"))


def test_identify_done_webhook() -> None:
    identity = adapter().identify(signed(fixture_bytes("recall", "webhook_transcript_done.json")))
    assert identity.dedupe_key == "msg_2Kq9"
    assert identity.provider_job_id == TID
    assert identity.job_hint == "job_01JDRECALL"


def test_identify_other_workspace_events_have_no_job() -> None:
    identity = adapter().identify(signed(b'{"event": "recording.done", "data": {"recording": {"id": "r1"}}}'))
    assert (identity.provider_job_id, identity.job_hint) == (None, None)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[]", id="not-object"),
        pytest.param(b'{"data": {}}', id="no-event"),
        pytest.param(b'{"event": "transcript.done", "data": {"transcript": {}}}', id="no-transcript-id"),
    ],
)
def test_identify_malformed_raises(body: bytes) -> None:
    with pytest.raises(UnusableBodyError):
        adapter().identify(signed(body))


async def test_resolve_failed_and_non_terminal_webhooks_need_no_fetch() -> None:
    recall = adapter()
    failed_cb = _stored(fixture_bytes("recall", "webhook_transcript_failed.json"))
    t = await recall.resolve(failed_cb, job_view())
    assert t is not None and t.status == "failed" and t.error is not None
    assert (t.error.code, t.text, t.metadata) == (
        "provider_connection_failed",
        "",
        {"external_id": "call-55123"},
    )
    processing = _stored(fixture_bytes("recall", "webhook_transcript_processing.json"))
    assert await recall.resolve(processing, job_view()) is None
    deleted = _stored(
        fixture_bytes("recall", "webhook_transcript_processing.json").replace(b"processing", b"deleted")
    )
    assert await recall.resolve(deleted, job_view()) is None


# -- against the fake, over HTTP --------------------------------------------------------------


async def test_submit_passes_provider_config_and_metadata(http: httpx.AsyncClient) -> None:
    with running(RecallFake()) as fake:
        recall = adapter(http, base_url=fake.base_url)
        request = SubmitRequest(
            job_id="job_01JDRECALL",
            callback_url="http://127.0.0.1:1/callbacks/recall",
            callback_secret="unused",
            audio_url=None,
            recording_id="9c1d5e2a-0b7f-4d3e-8a61-5b2f0c7d9e14",
            options={
                "deepgram_async": {"model": "nova-3"},
                "diarization": {"use_separate_streams_when_available": True},
            },
            metadata={"external_id": "call-55123"},
        )
        result = await recall.submit(request)
        nested = await recall.submit(
            SubmitRequest(
                **{
                    **request.__dict__,
                    "options": {"provider": {"assembly_ai_async": {"language_code": "en"}}},
                }
            )
        )
    sent = fake.jobs[result.provider_job_id].request
    assert sent["provider"] == {"deepgram_async": {"model": "nova-3"}}
    assert sent["diarization"] == {"use_separate_streams_when_available": True}
    assert sent["metadata"] == {"external_id": "call-55123", "callboard_job_id": "job_01JDRECALL"}
    assert fake.jobs[nested.provider_job_id].request["provider"] == {
        "assembly_ai_async": {"language_code": "en"}
    }
    assert (
        fake.requests[0].path == "/api/v1/recording/9c1d5e2a-0b7f-4d3e-8a61-5b2f0c7d9e14/create_transcript/"
    )
    assert fake.requests[0].headers["authorization"] == "Token test-key"
    assert result.registered_callback_url is None


async def test_submit_without_recording_id_raises(http: httpx.AsyncClient) -> None:
    request = SubmitRequest("job_1", "http://x/callbacks/recall", "s", "https://a/b.mp3", None, {}, {})
    with pytest.raises(UnusableBodyError, match="recording_id"):
        await adapter(http).submit(request)


@pytest.mark.parametrize("family", ["webhook", "svix"])
async def test_signed_fake_webhook_verifies_with_svix_standardwebhooks_and_us(
    http: httpx.AsyncClient, sink: CallbackSink, family: str
) -> None:
    fake = RecallFake(webhook_secret=SECRET, webhook_url=f"{sink.url}/callbacks/recall")
    with running(fake):
        job = fake.add_job(TID, metadata={"callboard_job_id": "job_01JDRECALL", "external_id": "call-55123"})
        job.extra["provider"] = {"assembly_ai_async": {"language_code": "en"}}
        responses = await fake.acallback(TID, status="completed", times=2, header_family=family)
        assert [r.status_code for r in responses] == [200, 200]
        first, received = sink.received
        svix.webhooks.Webhook(SECRET).verify(received.body, received.headers)
        if family == "webhook":
            standardwebhooks.Webhook(SECRET).verify(received.body, received.headers)
        recall = adapter(http, base_url=fake.base_url)
        inbound = received.inbound("recall")
        recall.authenticate(inbound)
        identity = recall.identify(inbound)
        assert identity == recall.identify(first.inbound("recall"))  # a retry has the same dedupe key
        assert (identity.provider_job_id, identity.job_hint) == (TID, "job_01JDRECALL")
        fake.result_failures = 1
        with pytest.raises(ProviderUnavailableError):
            await recall.resolve(received.stored("recall", provider_job_id=TID), job_view())
        t = await recall.resolve(received.stored("recall", provider_job_id=TID), job_view())
    assert t is not None
    assert (t.text, t.words, t.utterances) == (TEXT, WORDS, UTTERANCES)
    assert (t.language, t.completed_at, t.metadata) == (
        "en",
        "2026-11-21T10:02:11Z",
        {"external_id": "call-55123"},
    )
    download = [r for r in fake.requests if r.path.startswith("/download/")]
    assert download and "authorization" not in download[-1].headers


async def test_adopted_transcript_has_no_job_hint(http: httpx.AsyncClient, sink: CallbackSink) -> None:
    fake = RecallFake(webhook_secret=SECRET, webhook_url=f"{sink.url}/callbacks/recall")
    with running(fake):
        job = fake.add_job(metadata={"team": "support"})
        await fake.acallback(job.id, status="failed")
        identity = adapter(http).identify(sink.last().inbound("recall"))
        t = await adapter(http).resolve(sink.last().stored("recall"), job_view(job.id))
    assert (identity.provider_job_id, identity.job_hint) == (job.id, None)
    assert t is not None and t.error is not None and t.error.code == "provider_connection_failed"
    assert t.metadata == {"team": "support"}


async def test_done_webhook_before_the_artifact_is_done_is_retried(
    http: httpx.AsyncClient, sink: CallbackSink
) -> None:
    fake = RecallFake(webhook_secret=SECRET, webhook_url=f"{sink.url}/callbacks/recall")
    with running(fake):
        fake.add_job(TID)
        await fake.acallback(TID, status="done")
        fake.finish(TID, "processing")
        with pytest.raises(ProviderUnavailableError):
            await adapter(http, base_url=fake.base_url).resolve(sink.last().stored("recall"), job_view())


async def test_poll_follows_the_artifact_state(http: httpx.AsyncClient) -> None:
    with running(RecallFake()) as fake:
        recall = adapter(http, base_url=fake.base_url)
        fake.add_job(TID)
        assert await recall.poll(job_view()) is None
        fake.finish(TID, "completed")
        done = await recall.poll(job_view())
        fake.finish(TID, "failed")
        failed = await recall.poll(job_view())
        fake.finish(TID, "deleted")
        deleted = await recall.poll(job_view())
    assert done is not None and done.status == "completed" and done.words == WORDS
    assert (
        failed is not None and failed.error is not None and failed.error.code == "provider_connection_failed"
    )
    assert deleted is not None and deleted.error is not None and deleted.error.code == "transcript_deleted"
