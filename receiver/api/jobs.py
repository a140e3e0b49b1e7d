"""`/v1/jobs`: submit transcription jobs and read their state."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from receiver.api.common import decode_body, json_response, page_response, query_limit, query_time, service
from receiver.api.views import job_view
from receiver.exceptions import NotFoundError
from receiver.submission import submit_job
from storage.records import JobFilter


class JobRequest(msgspec.Struct, forbid_unknown_fields=True):
    provider: str
    audio_url: str | None = None
    recording_id: str | None = None
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


async def create_job(request: Request) -> Response:
    body = await decode_body(request, JobRequest)
    svc = service(request)
    job = await submit_job(
        svc,
        body.provider,
        audio_url=body.audio_url,
        recording_id=body.recording_id,
        options=body.options,
        metadata=body.metadata,
    )
    return json_response(job_view(job), status_code=201)


async def list_jobs(request: Request) -> Response:
    q = request.query_params
    flt = JobFilter(
        provider=q.get("provider"),
        status=q.get("status"),
        since=query_time(request, "since"),
        until=query_time(request, "until"),
    )
    page = await service(request).store.list_jobs(flt, cursor=q.get("cursor"), limit=query_limit(request))
    return page_response([job_view(j) for j in page.items], page.next_cursor)


async def get_job(request: Request) -> Response:
    store = service(request).store
    job = await store.get_job(request.path_params["job_id"])
    if job is None:
        raise NotFoundError(f"no job {request.path_params['job_id']!r}")
    view = job_view(job, await store.get_transcript(job.id))
    view.setdefault("transcript", None)
    return json_response(view)
