"""Fake Rev.ai: async jobs, their transcripts, and `notification_config` callbacks.

`POST /speechtotext/v1/jobs` (bearer key) answers the job object; `GET …/jobs/{id}` serves it and
`GET …/jobs/{id}/transcript` the monologues (406 without the Rev transcript `Accept` type, 409
`invalid-job-state` until the job is transcribed). The callback is `{"job": <job object>}` POSTed to
`notification_config.url` with its `auth_headers`.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.base import (
    CallbackRequest,
    FakeJob,
    FakeProvider,
    fixture,
    json_bytes,
    unauthorized,
    unavailable,
)

TRANSCRIPT_TYPE = "application/vnd.rev.transcript.v1.0+json"
STATUS = {"queued": "in_progress", "completed": "transcribed", "failed": "failed"}


class RevAIFake(FakeProvider):
    name = "revai"
    STATES = {
        "completed": "completed",
        "transcribed": "completed",
        "failed": "failed",
        "in_progress": "queued",
    }

    def routes(self) -> list[Route]:
        return [
            Route("/speechtotext/v1/jobs", self.create, methods=["POST"]),
            Route("/speechtotext/v1/jobs/{job_id}", self.retrieve, methods=["GET"]),
            Route("/speechtotext/v1/jobs/{job_id}/transcript", self.transcript, methods=["GET"]),
        ]

    def new_id(self) -> str:
        return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(12))

    def job_object(self, job: FakeJob) -> dict[str, Any]:
        doc: dict[str, Any] = fixture(
            "revai", "callback_failed.json" if job.status == "failed" else "callback_transcribed.json"
        )["job"]
        doc.update(id=job.id, status=STATUS[job.status], metadata=job.metadata.get("metadata"))
        if job.request:
            doc.update(source_config={"url": job.request["source_config"]["url"]})
            doc.update(notification_config={"url": job.callback_url})
        if job.status == "queued":
            for key in ("completed_on", "duration_seconds"):
                doc.pop(key, None)
        return {k: v for k, v in doc.items() if v is not None}  # Rev omits null properties

    async def create(self, request: Request) -> Response:
        body = await self.record(request)
        if not self.authorized(request, "Bearer "):
            return unauthorized()
        data = msgspec.json.decode(body)
        url = (data.get("source_config") or {}).get("url") or data.get("media_url")
        if not url:
            return JSONResponse({"title": "Your request parameters didn't validate", "status": 400}, 400)
        if data.get("callback_url") and data.get("notification_config"):
            return JSONResponse(
                {"title": "Only one of callback_url and notification_config", "status": 400}, 400
            )
        notification = data.get("notification_config") or {}
        job = self.add_job(
            callback_url=notification.get("url") or data.get("callback_url"),
            callback_headers=dict(notification.get("auth_headers") or {}),
            metadata={"metadata": data.get("metadata")},
            options={k: v for k, v in data.items() if k not in ("notification_config", "metadata")},
            request={**data, "source_config": {"url": url}},
        )
        job.secret = job.callback_headers.get("Authorization")
        return JSONResponse(self.job_object(job))

    async def retrieve(self, request: Request) -> Response:
        await self.record(request)
        if not self.authorized(request, "Bearer "):
            return unauthorized()
        job = self.job_or_404(request.path_params["job_id"])
        if isinstance(job, Response):
            return job
        if self.take_failure():
            return unavailable()
        return JSONResponse(self.job_object(job))

    async def transcript(self, request: Request) -> Response:
        await self.record(request)
        if not self.authorized(request, "Bearer "):
            return unauthorized()
        job = self.job_or_404(request.path_params["job_id"])
        if isinstance(job, Response):
            return job
        if request.headers.get("accept") != TRANSCRIPT_TYPE:
            return JSONResponse({"title": "Not Acceptable", "status": 406}, 406)
        if self.take_failure():
            return unavailable()
        if job.status != "completed":
            problem = {
                "type": "https://www.rev.ai/api/v1/errors/invalid-job-state",
                "title": "Job is in invalid state",
                "detail": "Job is in invalid state to obtain the transcript",
                "status": 409,
                "allowed_values": ["transcribed"],
                "current_value": STATUS[job.status],
            }
            return JSONResponse(problem, 409)
        return JSONResponse(fixture("revai", "transcript.json"), media_type=TRANSCRIPT_TYPE)

    def callback_request(self, job: FakeJob, status: str) -> CallbackRequest:
        if job.callback_url is None:
            raise ValueError(f"job {job.id} has no notification_config")
        headers = {"content-type": "application/json", **job.callback_headers}
        return CallbackRequest("POST", job.callback_url, headers, json_bytes({"job": self.job_object(job)}))
