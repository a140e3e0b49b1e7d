"""Job submission: record the job, then hand it to the provider with our callback URL.

The job row exists before the provider is called, so a callback that beats the provider's answer
finds its job. A refusal is recorded on the job and raised to the caller as a ProviderError.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import structlog

from receiver.exceptions import InvalidRequestError, ProviderError
from receiver.providers.base import SubmitRequest
from receiver.service import Service
from storage.ids import new_id
from storage.records import Job

log = structlog.get_logger("callboard.submission")


async def submit_job(
    service: Service,
    provider: str,
    *,
    audio_url: str | None = None,
    recording_id: str | None = None,
    options: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Job:
    adapter = service.adapter(provider)
    if not audio_url and not recording_id:
        raise InvalidRequestError("give an audio_url (or a recording_id for recall)")
    if audio_url and not audio_url.startswith(("http://", "https://")):
        raise InvalidRequestError("audio_url must be an http:// or https:// URL")
    options, metadata = dict(options or {}), dict(metadata or {})
    job_id = new_id("job")
    store = service.store
    await store.create_job(
        job_id, provider, audio_url=audio_url, recording_id=recording_id, options=options, metadata=metadata
    )
    request = SubmitRequest(
        job_id=job_id,
        callback_url=service.callback_url(provider, job_id),
        callback_secret=service.tokens.job_secret(job_id, provider),
        audio_url=audio_url,
        recording_id=recording_id,
        options=options,
        metadata=metadata,
    )
    try:
        result = await adapter.submit(request)
    except ProviderError as exc:
        await store.mark_submit_failed(job_id, {"code": exc.code, "message": exc.message})
        log.info("job.submit_failed", job=job_id, provider=provider, error=exc.message)
        raise
    except Exception as exc:
        await store.mark_submit_failed(job_id, {"code": "submit_error", "message": str(exc)})
        raise
    job = await store.mark_submitted(
        job_id, result.provider_job_id, reconcile_at=time.time() + service.settings.reconcile_after
    )
    assert job is not None
    log.info("job.submitted", job=job_id, provider=provider, provider_job_id=result.provider_job_id)
    return job
