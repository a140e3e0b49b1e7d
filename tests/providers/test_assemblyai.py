"""The `assemblyai` adapter against its fake: per-job auth header, thin callback, ms times."""

from __future__ import annotations

import time

import httpx
import pytest

from receiver.exceptions import ProviderUnavailableError, VerificationError
from receiver.model import Utterance, Word
from receiver.providers.assemblyai import AssemblyAI
from receiver.providers.base import JobView, ProviderConfig, SubmitRequest
from tests.fakes.assemblyai import AssemblyAIFake
from tests.fakes.base import running
from tests.fakes.sink import CallbackSink


def job_view(provider_job_id: str | None) -> JobView:
    return JobView("job_1", "assemblyai", provider_job_id, {}, {}, time.time())


async def test_assemblyai_fake_round_trip(http: httpx.AsyncClient, sink: CallbackSink) -> None:
    fake = AssemblyAIFake()
    with running(fake):
        adapter = AssemblyAI(ProviderConfig("assemblyai", fake.base_url, fake.api_key), http)
        result = await adapter.submit(
            SubmitRequest(
                "job_1",
                f"{sink.url}/cb/tok",
                "s3cret",
                "https://a.example/x.mp3",
                None,
                {"speaker_labels": True},
                {},
            )
        )
        pid = result.provider_job_id
        assert await adapter.poll(job_view(pid)) is None
        fake.result_failures = 1
        await fake.acallback(pid)
        inbound = sink.last().inbound("assemblyai", job_id="job_1", job_secret="s3cret")
        adapter.authenticate(inbound)
        with pytest.raises(VerificationError):
            adapter.authenticate(sink.last().inbound("assemblyai", job_id="job_1", job_secret="other"))
        assert adapter.identify(inbound).dedupe_key == f"{pid}:completed"
        stored = sink.last().stored("assemblyai", job_id="job_1")
        with pytest.raises(ProviderUnavailableError):
            await adapter.resolve(stored, job_view(pid))
        transcript = await adapter.resolve(stored, job_view(pid))
    assert transcript is not None
    assert transcript.text == "Thanks for calling Contoso. Hi, I need help."
    assert transcript.words[4] == Word("Hi,", 2.1, 2.3, 0.99, "B")
    assert transcript.utterances[0] == Utterance("A", 0.24, 1.6, "Thanks for calling Contoso.", 0.9525)
    assert transcript.duration == 4.0 and transcript.language == "en_us"


async def test_assemblyai_fake_error_and_redacted_audio(http: httpx.AsyncClient, sink: CallbackSink) -> None:
    fake = AssemblyAIFake()
    with running(fake):
        adapter = AssemblyAI(ProviderConfig("assemblyai", fake.base_url, fake.api_key), http)
        job = fake.add_job(callback_url=f"{sink.url}/cb/tok", callback_headers={"X-Callboard-Auth": "s"})
        await fake.acallback(job.id, status="failed")
        failed = await adapter.resolve(sink.last().stored("assemblyai", job_id="job_1"), job_view(job.id))
        await fake.acallback(job.id, redacted_audio=True)
        ignored = await adapter.resolve(sink.last().stored("assemblyai", job_id="job_1"), job_view(job.id))
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and failed.error.message.startswith("Download error")
    assert ignored is None
