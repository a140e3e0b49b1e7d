"""The `generic` adapter against its fake: submit, signed callback, resolve, poll."""

from __future__ import annotations

import time

import httpx
import pytest
import standardwebhooks

from receiver.exceptions import VerificationError
from receiver.model import Utterance, Word
from receiver.providers.base import JobView, ProviderConfig, SubmitRequest
from receiver.providers.generic import Generic
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
