"""Fake AssemblyAI: `POST /v2/transcript`, `GET /v2/transcript/{id}` (times in ms), thin callbacks.

The callback is `{"transcript_id", "status": "completed" | "error"}` POSTed to `webhook_url` with
the auth header registered on submit (`webhook_auth_header_name/value`). The API key goes in a bare
`Authorization` header. Variant: `redacted_audio=True` sends the older second webhook
`{"status": "redacted_audio_ready", "redacted_audio_url"}` (no transcript id).
"""

from __future__ import annotations

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

CALLBACK_STATUS = {"completed": "completed", "failed": "error"}


class AssemblyAIFake(FakeProvider):
    name = "assemblyai"
    STATES = {"completed": "completed", "failed": "failed", "error": "failed"}

    def routes(self) -> list[Route]:
        return [
            Route("/v2/transcript", self.create, methods=["POST"]),
            Route("/v2/transcript/{transcript_id}", self.retrieve, methods=["GET"]),
        ]

    def document(self, job: FakeJob) -> dict[str, Any]:
        doc: dict[str, Any]
        if job.status == "completed":
            doc = fixture("assemblyai", "transcript_completed.json")
        elif job.status == "failed":
            doc = fixture("assemblyai", "transcript_error.json")
        else:
            doc = {"status": "queued", "text": None, "words": None, "utterances": None, "error": None}
        doc.update(id=job.id, webhook_url=job.callback_url, webhook_auth=bool(job.callback_headers))
        doc.pop("webhook_auth_header_name", None)
        return doc

    async def create(self, request: Request) -> Response:
        body = await self.record(request)
        if not self.authorized(request, ""):
            return unauthorized()
        data = msgspec.json.decode(body)
        if not data.get("audio_url"):
            return JSONResponse({"error": "audio_url is required"}, status_code=400)
        header_name, header_value = (
            data.get("webhook_auth_header_name"),
            data.get("webhook_auth_header_value"),
        )
        job = self.add_job(
            callback_url=data.get("webhook_url"),
            callback_headers={header_name: header_value} if header_name and header_value else {},
            secret=header_value,
            options={k: v for k, v in data.items() if not k.startswith("webhook_") and k != "audio_url"},
            request=data,
        )
        return JSONResponse(self.document(job))

    async def retrieve(self, request: Request) -> Response:
        await self.record(request)
        if not self.authorized(request, ""):
            return unauthorized()
        job = self.job_or_404(request.path_params["transcript_id"])
        if isinstance(job, Response):
            return job
        if self.take_failure():
            return unavailable()
        return JSONResponse(self.document(job))

    def callback_request(self, job: FakeJob, status: str, *, redacted_audio: bool = False) -> CallbackRequest:
        if job.callback_url is None:
            raise ValueError(f"job {job.id} has no webhook_url")
        if redacted_audio:
            payload: dict[str, Any] = fixture("assemblyai", "webhook_redacted_audio.json")
        else:
            payload = {"transcript_id": job.id, "status": CALLBACK_STATUS[job.status]}
        headers = {"content-type": "application/json", "accept": "*/*", **job.callback_headers}
        return CallbackRequest("POST", job.callback_url, headers, json_bytes(payload))
