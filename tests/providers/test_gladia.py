"""`gladia`: full-result callbacks, account webhooks as hints, normalization, submit/poll."""

from __future__ import annotations

import time

import httpx
import pytest

from receiver.exceptions import ProviderUnavailableError, UnusableBodyError, VerificationError
from receiver.model import Utterance, Word
from receiver.providers.base import Inbound, JobView, ProviderConfig, StoredCallback, SubmitRequest
from receiver.providers.gladia import Gladia, from_document, normalize_result
from tests.fakes.base import fixture, fixture_bytes, running
from tests.fakes.gladia import GladiaFake
from tests.fakes.sink import CallbackSink

GID = "45463597-20b7-4af7-b3b3-f5fb778203ab"
TEXT = "Thanks for calling Contoso. Hi, I need help."
WORDS = [
    Word("Thanks", 0.24, 0.52, 0.98, "0"),
    Word("for", 0.52, 0.68, 0.97, "0"),
    Word("calling", 0.68, 1.04, 0.95, "0"),
    Word("Contoso.", 1.04, 1.6, 0.91, "0"),
    Word("Hi,", 2.1, 2.3, 0.99, "1"),
    Word("I", 2.42, 2.5, 0.96, "1"),
    Word("need", 2.5, 2.72, 0.97, "1"),
    Word("help.", 2.72, 3.1, 0.93, "1"),
]
UTTERANCES = [
    Utterance("0", 0.24, 1.6, "Thanks for calling Contoso.", 0.95),
    Utterance("1", 2.1, 3.1, "Hi, I need help.", 0.97),
]
METADATA = {"external_id": "call-55123"}
_UNUSED_CLIENT = httpx.AsyncClient()  # pure tests never make a request with it


def adapter(
    http: httpx.AsyncClient = _UNUSED_CLIENT,
    base_url: str = "http://gladia.invalid",
    secret: str | None = None,
) -> Gladia:
    return Gladia(ProviderConfig("gladia", base_url, "test-key", secret), http)


def inbound(
    body: bytes, *, job_id: str | None = "job_01JDGLADIA", query: dict[str, str] | None = None
) -> Inbound:
    return Inbound("gladia", "POST", {}, query or {}, body, job_id, "unused" if job_id else None)


def stored(body: bytes, job_id: str | None = "job_01JDGLADIA") -> StoredCallback:
    return StoredCallback("cb_1", "gladia", job_id, GID, "POST", {}, {}, body)


def job_view(provider_job_id: str | None = GID) -> JobView:
    return JobView("job_01JDGLADIA", "gladia", provider_job_id, {}, {}, time.time())


# -- normalization ----------------------------------------------------------------------------


def test_normalize_callback_payload() -> None:
    body = fixture("gladia", "callback_success.json")
    t = normalize_result(GID, body["payload"], metadata=METADATA)
    assert (t.status, t.provider, t.provider_job_id, t.text) == ("completed", "gladia", GID, TEXT)
    assert t.words == WORDS
    assert t.utterances == UTTERANCES
    assert (t.language, t.duration, t.confidence) == ("en", 3.5, 0.9585)  # duration-weighted
    assert t.metadata == METADATA


def test_from_document_done_error_and_running() -> None:
    done = from_document(fixture("gladia", "result_done.json"))
    assert done is not None and (done.text, done.words, done.utterances) == (TEXT, WORDS, UTTERANCES)
    assert (done.completed_at, done.duration, done.metadata) == ("2026-11-21T10:00:02Z", 3.5, METADATA)
    error = from_document(fixture("gladia", "result_error.json"))
    assert error is not None and error.status == "failed" and error.error is not None
    assert (error.error.code, error.text) == ("400", "")
    assert "400" in error.error.message
    assert from_document({"id": GID, "status": "processing", "result": None}) is None


def test_normalize_without_diarization_has_no_speakers() -> None:
    payload = fixture("gladia", "callback_success.json")["payload"]
    for u in payload["transcription"]["utterances"]:
        del u["speaker"]
    t = normalize_result(GID, payload)
    assert {w.speaker for w in t.words} == {None}


# -- authenticate / identify ------------------------------------------------------------------


def test_identify_callback_and_its_legacy_spelling_share_a_key() -> None:
    body = fixture_bytes("gladia", "callback_success.json")
    identity = adapter().identify(inbound(body))
    assert identity.dedupe_key == f"{GID}:transcription.success"
    assert (identity.provider_job_id, identity.job_hint) == (GID, "job_01JDGLADIA")
    legacy = body.replace(b'"transcription.success"', b'"success"')
    assert adapter().identify(inbound(legacy)) == identity


def test_identify_account_webhook() -> None:
    identity = adapter().identify(
        inbound(fixture_bytes("gladia", "account_webhook_success.json"), job_id=None)
    )
    assert identity.dedupe_key == f"account:{GID}:transcription.success"
    assert (identity.provider_job_id, identity.job_hint) == (GID, None)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"<xml/>", id="not-json"),
        pytest.param(b'{"id": "x"}', id="no-event"),
        pytest.param(b'{"event": "transcription.success", "payload": {}}', id="no-id"),
    ],
)
def test_identify_malformed_raises(body: bytes) -> None:
    with pytest.raises(UnusableBodyError):
        adapter().identify(inbound(body))


def test_authenticate_account_webhook_secret_when_configured() -> None:
    body = fixture_bytes("gladia", "account_webhook_success.json")
    adapter().authenticate(inbound(body, job_id=None))  # no secret configured: a hint, accepted
    adapter(secret="s3cret").authenticate(inbound(body, job_id=None, query={"secret": "s3cret"}))
    adapter(secret="s3cret").authenticate(inbound(body))  # per-job: the URL token sufficed
    for query in ({}, {"secret": "wrong"}):
        with pytest.raises(VerificationError):
            adapter(secret="s3cret").authenticate(inbound(body, job_id=None, query=query))


async def test_resolve_error_callback() -> None:
    t = await adapter().resolve(stored(fixture_bytes("gladia", "callback_error.json")), job_view())
    assert t is not None and t.status == "failed" and t.error is not None
    assert (t.error.code, t.error.message) == ("400", "Audio file could not be downloaded")
    assert t.metadata == METADATA


async def test_resolve_refuses_a_callback_about_another_job() -> None:
    with pytest.raises(UnusableBodyError):
        await adapter().resolve(stored(fixture_bytes("gladia", "callback_success.json")), job_view("other"))


# -- against the fake, over HTTP --------------------------------------------------------------


async def submit(gladia: Gladia, sink: CallbackSink, **options: object) -> str:
    request = SubmitRequest(
        "job_01JDGLADIA",
        f"{sink.url}/callbacks/gladia/tok",
        "unused",
        "https://a.example/call.mp3",
        None,
        {"diarization": True, **options},
        METADATA,
    )
    return (await gladia.submit(request)).provider_job_id


async def test_put_callback_carries_the_full_result(http: httpx.AsyncClient, sink: CallbackSink) -> None:
    with running(GladiaFake()) as fake:
        gladia = adapter(http, fake.base_url)
        gid = await submit(gladia, sink, callback_method="put")
        sent = fake.jobs[gid].request
        assert sent["callback"] is True
        assert sent["callback_config"] == {"url": f"{sink.url}/callbacks/gladia/tok", "method": "PUT"}
        assert sent["custom_metadata"] == {**METADATA, "callboard_job_id": "job_01JDGLADIA"}
        assert sent["diarization"] is True and "callback_method" not in sent
        await fake.acallback(gid, times=2)
        received = sink.last()
        assert received.method == "PUT" and len(sink.received) == 2
        identity = gladia.identify(received.inbound("gladia", job_id="job_01JDGLADIA"))
        assert identity.job_hint == "job_01JDGLADIA"
        requests_before = len(fake.requests)
        t = await gladia.resolve(received.stored("gladia", job_id="job_01JDGLADIA"), job_view(gid))
        assert len(fake.requests) == requests_before  # nothing fetched: the callback had it all
    assert t is not None and (t.provider_job_id, t.text, t.words, t.metadata) == (gid, TEXT, WORDS, METADATA)
    assert fake.requests[0].headers["x-gladia-key"] == "test-key"


async def test_callback_without_payload_is_fetched(http: httpx.AsyncClient, sink: CallbackSink) -> None:
    with running(GladiaFake()) as fake:
        gladia = adapter(http, fake.base_url)
        gid = await submit(gladia, sink)
        await fake.acallback(gid, payload=False, legacy_events=True)
        fake.result_failures = 1
        cb = sink.last().stored("gladia", job_id="job_01JDGLADIA")
        with pytest.raises(ProviderUnavailableError):
            await gladia.resolve(cb, job_view(gid))
        t = await gladia.resolve(cb, job_view(gid))
    assert t is not None and t.words == WORDS and t.completed_at == "2026-11-21T10:00:02Z"


async def test_account_webhook_is_resolved_from_the_api(http: httpx.AsyncClient, sink: CallbackSink) -> None:
    fake = GladiaFake(webhook_url=f"{sink.url}/callbacks/gladia")
    with running(fake):
        gladia = adapter(http, fake.base_url)
        job = fake.add_job(GID, metadata={"callboard_job_id": "job_01JDGLADIA", **METADATA})
        fake.account_webhook(GID, "transcription.created")
        assert await gladia.resolve(sink.last().stored("gladia", job_id=None), job_view()) is None
        fake.account_webhook(GID)
        cb = sink.last().stored("gladia", job_id=None)
        job.status = "queued"  # the API lags behind the webhook
        with pytest.raises(ProviderUnavailableError):
            await gladia.resolve(cb, job_view())
        job.status = "completed"
        t = await gladia.resolve(cb, job_view())
    assert t is not None and t.text == TEXT and t.metadata == METADATA


async def test_poll(http: httpx.AsyncClient) -> None:
    with running(GladiaFake()) as fake:
        gladia = adapter(http, fake.base_url)
        fake.add_job(GID)
        assert await gladia.poll(job_view()) is None
        fake.finish(GID, "completed")
        done = await gladia.poll(job_view())
        fake.finish(GID, "failed")
        error = await gladia.poll(job_view())
    assert done is not None and done.utterances == UTTERANCES
    assert error is not None and error.error is not None and error.error.code == "400"


async def test_submit_rejects_an_unknown_callback_method(http: httpx.AsyncClient) -> None:
    request = SubmitRequest(
        "job_1", "http://x/cb", "s", "https://a/b.mp3", None, {"callback_method": "GET"}, {}
    )
    with pytest.raises(UnusableBodyError):
        await adapter(http).submit(request)
