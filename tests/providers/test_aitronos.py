"""`aitronos`: the webhook as a hint, the GET + action link as the truth, assumed shapes documented."""

from __future__ import annotations

import time

import httpx
import pytest

from receiver.exceptions import (
    InvalidRequestError,
    ProviderUnavailableError,
    UnusableBodyError,
    VerificationError,
)
from receiver.model import Utterance, Word
from receiver.providers.aitronos import Aitronos, normalize
from receiver.providers.base import Inbound, JobView, ProviderConfig, StoredCallback, SubmitRequest
from tests.fakes.aitronos import AitronosFake
from tests.fakes.base import fixture, fixture_bytes, running
from tests.fakes.sink import CallbackSink

TID = "trans_a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
TEXT = "Thanks for calling Contoso. Hi, I need help."
WORDS = [
    Word("Thanks", 0.24, 0.52, 0.98, "A"),
    Word("for", 0.52, 0.68, 0.97, "A"),
    Word("calling", 0.68, 1.04, 0.95, "A"),
    Word("Contoso.", 1.04, 1.6, 0.91, "A"),
    Word("Hi,", 2.1, 2.3, 0.99, "B"),
    Word("I", 2.42, 2.5, 0.96, "B"),
    Word("need", 2.5, 2.72, 0.97, "B"),
    Word("help.", 2.72, 3.1, 0.93, "B"),
]
UTTERANCES = [
    Utterance("A", 0.24, 1.6, "Thanks for calling Contoso.", 0.9525),
    Utterance("B", 2.1, 3.1, "Hi, I need help.", 0.9625),
]
_UNUSED_CLIENT = httpx.AsyncClient()  # pure tests never make a request with it


def adapter(
    http: httpx.AsyncClient = _UNUSED_CLIENT,
    base_url: str = "http://aitronos.invalid",
    org: str | None = "org_cfg",
) -> Aitronos:
    extra = {"organization_id": org} if org else {}
    return Aitronos(ProviderConfig("aitronos", base_url, "test-key", extra=extra), http)


def inbound(body: bytes, job_id: str | None = "job_01JDAITRONOS") -> Inbound:
    return Inbound("aitronos", "POST", {}, {}, body, job_id, "unused")


def job_view(provider_job_id: str | None = TID) -> JobView:
    return JobView("job_01JDAITRONOS", "aitronos", provider_job_id, {}, {}, time.time())


# -- normalization ----------------------------------------------------------------------------


def test_normalize_completed_with_sentences() -> None:
    t = normalize(fixture("aitronos", "transcription_completed.json"), fixture("aitronos", "sentences.json"))
    assert t is not None
    assert (t.status, t.provider, t.provider_job_id, t.text) == ("completed", "aitronos", TID, TEXT)
    assert t.words == WORDS
    assert t.utterances == UTTERANCES
    assert (t.language, t.duration, t.confidence) == ("en", 3.5, 0.9575)
    assert t.completed_at == "2026-11-21T10:01:05Z"


def test_normalize_failed_and_running() -> None:
    t = normalize(fixture("aitronos", "transcription_failed.json"))
    assert t is not None and t.status == "failed" and t.error is not None
    assert (t.error.code, t.error.message, t.text) == (
        "AUDIO_DOWNLOAD_FAILED",
        "The audio file could not be downloaded.",
        "",
    )
    running_doc = fixture("aitronos", "transcription_completed.json")
    running_doc["data"]["status"] = "processing"
    assert normalize(running_doc) is None
    string_error = fixture("aitronos", "transcription_failed.json")
    string_error["data"]["error"] = "upstream provider error"
    t = normalize(string_error)
    assert (
        t is not None
        and t.error is not None
        and (t.error.code, t.error.message) == ("failed", "upstream provider error")
    )


def test_millisecond_times_are_detected() -> None:
    content = fixture("aitronos", "sentences.json")
    for sentence in content["data"]["sentences"]:
        for item in [sentence, *sentence["words"]]:
            item["start"], item["end"] = round(item["start"] * 1000), round(item["end"] * 1000)
    t = normalize(fixture("aitronos", "transcription_completed.json"), content)
    assert t is not None and (t.words, t.utterances) == (WORDS, UTTERANCES)
    explicit = {"data": {"words": [{"text": "Hi", "start_ms": 2100, "end_ms": 2300}]}}
    t = normalize(fixture("aitronos", "transcription_completed.json"), explicit)
    assert t is not None and t.words == [Word("Hi", 2.1, 2.3, None, None)]


def test_inline_content_without_action_links() -> None:
    doc = fixture("aitronos", "transcription_completed.json")
    doc["data"]["text"] = TEXT
    doc["data"]["words"] = [
        w for s in fixture("aitronos", "sentences.json")["data"]["sentences"] for w in s["words"]
    ]
    t = normalize(doc)
    assert t is not None and (t.text, t.words) == (TEXT, WORDS)
    assert [(u.speaker, u.text) for u in t.utterances] == [
        ("A", "Thanks for calling Contoso."),
        ("B", "Hi, I need help."),
    ]


# -- authenticate / identify ------------------------------------------------------------------


def test_identify_whatever_the_webhook_carries() -> None:
    identity = adapter().identify(inbound(fixture_bytes("aitronos", "webhook_completed.json")))
    assert (identity.dedupe_key, identity.provider_job_id) == (f"{TID}:transcription.completed", TID)
    flat = adapter().identify(inbound(b'{"id": "trans_x", "status": "failed"}'))
    assert (flat.dedupe_key, flat.provider_job_id) == ("trans_x:failed", "trans_x")
    opaque = adapter().identify(inbound(b'{"ping": true}'))
    assert opaque.dedupe_key.startswith("sha256:") and opaque.provider_job_id is None
    assert opaque == adapter().identify(inbound(b'{"ping": true}'))


@pytest.mark.parametrize("body", [b"", b"nope", b'["trans_x"]'])
def test_identify_non_object_raises(body: bytes) -> None:
    with pytest.raises(UnusableBodyError):
        adapter().identify(inbound(body))


def test_authenticate_needs_the_per_job_url() -> None:
    adapter().authenticate(inbound(b"{}"))
    with pytest.raises(VerificationError):
        adapter().authenticate(inbound(b"{}", job_id=None))


async def test_resolve_without_any_id_raises() -> None:
    cb = StoredCallback("cb_1", "aitronos", "job_1", None, "POST", {}, {}, b'{"ping": true}')
    with pytest.raises(UnusableBodyError):
        await adapter().resolve(cb, job_view(None))


# -- against the fake, over HTTP --------------------------------------------------------------


def submit_request(sink: CallbackSink, **options: object) -> SubmitRequest:
    return SubmitRequest(
        "job_01JDAITRONOS",
        f"{sink.url}/callbacks/aitronos/tok",
        "unused",
        "https://a.example/call.mp3",
        None,
        {"speaker_analysis": {"diarization_enabled": True, "speakers_expected_count": 2}, **options},
        {},
    )


async def test_submit_takes_the_organization_from_options_or_settings(
    http: httpx.AsyncClient, sink: CallbackSink
) -> None:
    with running(AitronosFake()) as fake:
        from_settings = await adapter(http, fake.base_url, org="org_cfg").submit(submit_request(sink))
        from_option = await adapter(http, fake.base_url).submit(
            submit_request(sink, organization_id="org_opt", language="de")
        )
        with pytest.raises(InvalidRequestError, match="CALLBOARD_AITRONOS_ORGANIZATION_ID"):
            await adapter(http, fake.base_url, org=None).submit(submit_request(sink))
    sent = fake.jobs[from_settings.provider_job_id].request
    assert sent["organization_id"] == "org_cfg"
    assert sent["transcription_options"] == {"audio_url": "https://a.example/call.mp3", "language": "en"}
    assert sent["webhook"] == {
        "url": f"{sink.url}/callbacks/aitronos/tok",
        "events": ["transcription.completed", "transcription.failed"],
    }
    assert sent["speaker_analysis"] == {"diarization_enabled": True, "speakers_expected_count": 2}
    other = fake.jobs[from_option.provider_job_id].request
    assert (other["organization_id"], other["transcription_options"]["language"]) == ("org_opt", "de")
    assert from_settings.provider_job_id.startswith("trans_")


async def test_webhook_is_resolved_from_the_api_and_sentences(
    http: httpx.AsyncClient, sink: CallbackSink
) -> None:
    with running(AitronosFake()) as fake:
        aitronos = adapter(http, fake.base_url)
        tid = (await aitronos.submit(submit_request(sink))).provider_job_id
        await fake.acallback(tid)
        received = sink.last()
        aitronos.authenticate(received.inbound("aitronos", job_id="job_01JDAITRONOS"))
        assert aitronos.identify(received.inbound("aitronos")).dedupe_key == f"{tid}:transcription.completed"
        fake.result_failures = 1
        cb = received.stored("aitronos", job_id="job_01JDAITRONOS")
        with pytest.raises(ProviderUnavailableError):
            await aitronos.resolve(cb, job_view(tid))
        t = await aitronos.resolve(cb, job_view(tid))
    assert t is not None and (t.provider_job_id, t.text, t.words, t.utterances) == (
        tid,
        TEXT,
        WORDS,
        UTTERANCES,
    )
    assert fake.requests[-1].path.endswith("/sentences")
    assert {r.headers["authorization"] for r in fake.requests} == {"Bearer test-key"}


async def test_links_to_another_host_are_fetched_from_the_configured_one(http: httpx.AsyncClient) -> None:
    fake = AitronosFake()
    fake.foreign_links = True
    with running(fake):
        fake.add_job(TID, status="completed")
        t = await adapter(http, fake.base_url).poll(job_view())
    assert t is not None and t.words == WORDS
    assert fake.requests[-1].path == f"/v1/audio/transcribe/{TID}/sentences"


async def test_terminal_hint_ahead_of_the_api_is_retried_other_hints_ignored(
    http: httpx.AsyncClient, sink: CallbackSink
) -> None:
    with running(AitronosFake()) as fake:
        aitronos = adapter(http, fake.base_url)
        job = fake.add_job(TID, callback_url=f"{sink.url}/cb")
        await fake.acallback(TID)
        job.status = "queued"
        with pytest.raises(ProviderUnavailableError):
            await aitronos.resolve(sink.last().stored("aitronos", job_id="job_1"), job_view())
        progress = StoredCallback(
            "cb_2", "aitronos", "job_1", TID, "POST", {}, {}, b'{"event": "transcription.processing"}'
        )
        assert await aitronos.resolve(progress, job_view()) is None


async def test_poll(http: httpx.AsyncClient) -> None:
    with running(AitronosFake()) as fake:
        aitronos = adapter(http, fake.base_url)
        fake.add_job(TID)
        assert await aitronos.poll(job_view()) is None
        fake.finish(TID, "completed")
        done = await aitronos.poll(job_view())
        fake.finish(TID, "failed")
        failed = await aitronos.poll(job_view())
    assert done is not None and done.text == TEXT
    assert failed is not None and failed.error is not None and failed.error.code == "AUDIO_DOWNLOAD_FAILED"
