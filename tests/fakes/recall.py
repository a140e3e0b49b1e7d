"""Fake Recall.ai: create_transcript on a recording, the transcript artifact, its download, Svix webhooks.

`POST /api/v1/recording/{id}/create_transcript/` (`Authorization: Token <key>` or the bare key)
creates a transcript artifact; `GET /api/v1/transcript/{id}/` serves it, with a pre-signed
`data.download_url` once it is done; the download (no auth header allowed, like S3 pre-signed URLs)
serves the participant segments. Webhooks go to the workspace endpoint `webhook_url` (there is no
per-job URL) and are signed with `webhook_secret` (`whsec_…`) as Svix does, with
`header_family="webhook"` (workspace secrets, the default) or `"svix"` (legacy endpoints); the
message id stays the same across `times` retries while the timestamp changes. Unsigned when the fake
has no secret.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import httpx
import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from routes.signing import secret_key, signature_header
from tests.fakes.base import (
    CALLBACK_TIMEOUT,
    CallbackRequest,
    FakeJob,
    FakeProvider,
    fixture,
    json_bytes,
    unauthorized,
    unavailable,
)

EVENTS = {
    "completed": "transcript.done",
    "done": "transcript.done",
    "failed": "transcript.failed",
    "processing": "transcript.processing",
    "deleted": "transcript.deleted",
}
CODES = {"queued": "processing", "completed": "done", "failed": "failed", "deleted": "deleted"}
SUB_CODE = "provider_connection_failed"


class RecallFake(FakeProvider):
    name = "recall"
    STATES = {
        "completed": "completed",
        "done": "completed",
        "failed": "failed",
        "processing": "queued",
        "deleted": "deleted",
    }

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/recording/{recording_id}/create_transcript/", self.create, methods=["POST"]),
            Route("/api/v1/transcript/{transcript_id}/", self.retrieve, methods=["GET"]),
            Route("/download/transcript/{transcript_id}", self.download, methods=["GET"]),
        ]

    def add_job(self, job_id: str | None = None, **fields: Any) -> FakeJob:
        """A transcript artifact; `recording_id` and `provider` may be given in `extra`."""
        job = super().add_job(job_id, **fields)
        job.extra.setdefault("recording_id", str(uuid.uuid4()))
        job.extra.setdefault("provider", {"recallai_async": {}})
        job.extra.setdefault("download_token", secrets.token_urlsafe(16))
        return job

    def artifact(self, job: FakeJob) -> dict[str, Any]:
        doc: dict[str, Any] = fixture("recall", "transcript_done.json")
        done = job.status == "completed"
        doc.update(
            id=job.id,
            recording={"id": job.extra["recording_id"], "metadata": {}},
            status={
                "code": CODES[job.status],
                "sub_code": SUB_CODE if job.status == "failed" else None,
                "updated_at": "2026-11-21T10:02:11.000Z",
            },
            metadata=dict(job.metadata),
            provider=job.extra["provider"],
            data={
                "download_url": (
                    f"{self.base_url}/download/transcript/{job.id}?token={job.extra['download_token']}"
                    if done
                    else None
                ),
                "provider_data_download_url": None,
            },
        )
        return doc

    async def create(self, request: Request) -> Response:
        body = await self.record(request)
        if not self.authorized(request, "Token ", ""):
            return unauthorized()
        data = msgspec.json.decode(body)
        provider = data.get("provider")
        if not isinstance(provider, dict) or len(provider) != 1:
            return JSONResponse({"provider": ["exactly one provider is required"]}, status_code=400)
        job = self.add_job(
            metadata=dict(data.get("metadata") or {}),
            options={k: v for k, v in data.items() if k != "metadata"},
            request=data,
        )
        job.extra.update(recording_id=request.path_params["recording_id"], provider=provider)
        return JSONResponse(self.artifact(job), status_code=201)

    async def retrieve(self, request: Request) -> Response:
        await self.record(request)
        if not self.authorized(request, "Token ", ""):
            return unauthorized()
        job = self.job_or_404(request.path_params["transcript_id"])
        if isinstance(job, Response):
            return job
        if self.take_failure():
            return unavailable()
        return JSONResponse(self.artifact(job))

    async def download(self, request: Request) -> Response:
        await self.record(request)
        job = self.job_or_404(request.path_params["transcript_id"])
        if isinstance(job, Response):
            return job
        if "authorization" in request.headers:
            return JSONResponse({"error": "Only one auth mechanism allowed"}, status_code=400)
        if request.query_params.get("token") != job.extra["download_token"] or job.status != "completed":
            return JSONResponse({"error": "AccessDenied"}, status_code=403)
        if self.take_failure():
            return unavailable()
        return JSONResponse(fixture("recall", "download.json"))

    def _signed(self, body: bytes, msg_id: str, header_family: str) -> dict[str, str]:
        headers = {"content-type": "application/json", "user-agent": "Svix-Webhooks/1.0"}
        if self.webhook_secret:
            now = int(time.time())
            signature = signature_header([secret_key(self.webhook_secret)], msg_id, now, body)
            prefix = "svix" if header_family == "svix" else "webhook"
            headers.update(
                {f"{prefix}-id": msg_id, f"{prefix}-timestamp": str(now), f"{prefix}-signature": signature}
            )
        return headers

    def callback_request(
        self, job: FakeJob, status: str, *, header_family: str = "webhook", bot: bool = True
    ) -> CallbackRequest:
        if self.webhook_url is None:
            raise ValueError("set fake.webhook_url: Recall calls the workspace endpoint, not a per-job URL")
        event = EVENTS[status]
        code = event.removeprefix("transcript.")
        payload = {
            "event": event,
            "data": {
                "data": {
                    "code": code,
                    "sub_code": SUB_CODE if code == "failed" else None,
                    "updated_at": "2026-11-21T10:02:11.000Z",
                },
                "transcript": {"id": job.id, "metadata": dict(job.metadata)},
                "recording": {"id": job.extra["recording_id"], "metadata": {}},
                "bot": {"id": "b07c1f0e-2a8d-4c55-9f3b-7e6a1d2c3b4a", "metadata": {}} if bot else None,
            },
        }
        body = json_bytes(payload)
        msg_id = job.extra.setdefault(f"msg:{event}", "msg_" + uuid.uuid4().hex[:24])
        return CallbackRequest("POST", self.webhook_url, self._signed(body, msg_id, header_family), body)

    def workspace_event(
        self, event: str, data: dict[str, Any], *, header_family: str = "webhook"
    ) -> httpx.Response:
        """Send any other signed workspace event (e.g. `recording.done`) to `webhook_url`."""
        if self.webhook_url is None:
            raise ValueError("set fake.webhook_url first")
        body = json_bytes({"event": event, "data": data})
        headers = self._signed(body, "msg_" + uuid.uuid4().hex[:24], header_family)
        return httpx.post(self.webhook_url, headers=headers, content=body, timeout=CALLBACK_TIMEOUT)
