"""The `generic` adapter against its fake: submit, signed callback, resolve, poll."""

from __future__ import annotations

import time

import httpx
import pytest
import standardwebhooks

from receiver.exceptions import UnusableBodyError, VerificationError
from receiver.model import Utterance, Word
from receiver.providers.base import Identity, Inbound, JobView, ProviderConfig, SubmitRequest
from receiver.providers.generic import Generic, transcript_of
from routes.signing import new_secret
from tests.fakes.base import running
from tests.fakes.generic import GenericFake
from tests.fakes.sink import CallbackSink

SECRET = new_secret()


def job_view(provider_job_id: str) -> JobView:
    return JobView("job_1", "generic", provider_job_id, {}, {}, time.time())


async def submit(adapter: Generic, sink: CallbackSink) -> str:
    result = await adapter.submit(
        SubmitRequest(
            job_id="job_1",
            callback_url=f"{sink.url}/callbacks/generic/tok",
            callback_secret="unused",
            audio_url="https://storage.example.com/call.mp3",
            recording_id=None,
            options={"diarize": True},
            metadata={"external_id": "call-55123"},
        )
    )
    return result.provider_job_id


async def test_generic_fake_signed_callback_resolves(http: httpx.AsyncClient, sink: CallbackSink) -> None:
    fake = GenericFake(webhook_secret=SECRET)
    with running(fake):
        adapter = Generic(ProviderConfig("generic", fake.base_url, "test-key", SECRET), http)
        pid = await submit(adapter, sink)
        assert fake.jobs[pid].request["diarize"] is True
        [response] = await fake.acallback(pid)
        assert response.status_code == 200
        received = sink.last()
        standardwebhooks.Webhook(SECRET).verify(received.body, received.headers)
        inbound = received.inbound("generic", job_id="job_1", job_secret="unused")
        adapter.authenticate(inbound)
        assert adapter.identify(inbound).provider_job_id == pid
        transcript = await adapter.resolve(received.stored("generic", job_id="job_1"), job_view(pid))
    assert transcript is not None
    assert transcript.text == "Thanks for calling Contoso. Hi, I need help."
    assert transcript.words[0] == Word("Thanks", 0.24, 0.52, 0.98, None)
    assert transcript.utterances[1] == Utterance("1", 2.1, 3.1, "Hi, I need help.", 0.9625)
    assert transcript.metadata == {"external_id": "call-55123"}


async def test_generic_fake_thin_callback_is_fetched_after_503(
    http: httpx.AsyncClient, sink: CallbackSink
) -> None:
    fake = GenericFake()
    with running(fake):
        adapter = Generic(ProviderConfig("generic", fake.base_url, "test-key"), http)
        pid = await submit(adapter, sink)
        await fake.acallback(pid, thin=True, times=2)
        assert len(sink.received) == 2
        fake.result_failures = 1
        stored = sink.last().stored("generic", job_id="job_1")
        with pytest.raises(Exception, match="503"):
            await adapter.resolve(stored, job_view(pid))
        transcript = await adapter.resolve(stored, job_view(pid))
    assert transcript is not None and len(transcript.words) == 8


async def test_generic_fake_wrong_secret_fails_verification(
    http: httpx.AsyncClient, sink: CallbackSink
) -> None:
    fake = GenericFake(webhook_secret=new_secret())
    with running(fake):
        adapter = Generic(ProviderConfig("generic", fake.base_url, "test-key", SECRET), http)
        pid = await submit(adapter, sink)
        await fake.acallback(pid, status="failed")
        with pytest.raises(VerificationError):
            adapter.authenticate(sink.last().inbound("generic", job_id="job_1"))
        fake.webhook_secret = SECRET
        failed = await adapter.poll(job_view(pid))
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and failed.error.code == "audio_unreachable"


# -- identify: only `id` and `status` are decoded; the answer is what a whole decode gives ------------

IDENTIFY_BODIES = [
    pytest.param(b'{"type":"transcript.completed","data":{"id":"tr_1","status":"completed"}}', id="envelope"),
    pytest.param(b'{"id":"tr_1","status":"completed","words":[{"text":"hi"}]}', id="bare"),
    pytest.param(b' {"type" : null , "data" : { "id" : "tr_1" } } ', id="whitespace-null-type-no-status"),
    pytest.param(b'{"data":{"id":"tr_inner"},"id":"tr_outer","status":"queued"}', id="data-without-type"),
    pytest.param(b'{"type":"x","data":[1],"id":"tr_outer","status":1}', id="data-not-an-object"),
    pytest.param(b'{"type":"x","data":null,"id":"tr_outer"}', id="data-null"),
    pytest.param(b'{"type":"x","data":{"status":"completed"},"id":"tr_outer"}', id="data-without-id"),
    pytest.param(b'{"type":"x","data":{"id":"tr_1","status":{"a":[1]}}}', id="status-an-object"),
    pytest.param(b'{"type":"x","data":{"id":"tr_1","status":null}}', id="status-null"),
    pytest.param(b'{"type":"x","data":{"id":"a","id":"b"},"data":{"id":"c"}}', id="duplicate-keys"),
    pytest.param(b'{"id":""}', id="empty-id"),
    pytest.param(b'{"id":7}', id="id-a-number"),
    pytest.param(b"{}", id="empty-object"),
    pytest.param(b"[1, 2]", id="array"),
    pytest.param(b'"tr_1"', id="string"),
    pytest.param(b"[1, 2", id="truncated-array"),
    pytest.param(b'{"id": "tr_1"', id="truncated-object"),
    pytest.param(b'{"id": tr_1}', id="not-json"),
    pytest.param(b"", id="empty"),
    pytest.param(b"  \n", id="blank"),
]


@pytest.mark.parametrize("body", IDENTIFY_BODIES)
@pytest.mark.parametrize("webhook_id", [None, "msg_1"])
def test_identify_reads_what_a_whole_decode_reads(body: bytes, webhook_id: str | None) -> None:
    adapter = Generic(ProviderConfig("generic", "http://generic.invalid", None), httpx.AsyncClient())
    inbound = Inbound("generic", "POST", {} if webhook_id is None else {"webhook-id": webhook_id}, {}, body, "job_1")
    try:
        data = transcript_of(inbound.json_object())
    except UnusableBodyError as exc:
        with pytest.raises(UnusableBodyError) as got:
            adapter.identify(inbound)
        assert str(got.value) == str(exc)
        return
    dedupe_key = webhook_id or f"{data['id']}:{data.get('status', '')}"
    assert adapter.identify(inbound) == Identity(dedupe_key=dedupe_key, provider_job_id=str(data["id"]))
