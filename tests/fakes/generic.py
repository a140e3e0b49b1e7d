"""Fake `generic` provider: the `/v1/transcripts` API of `seeds/002`, Callboard's own shape.

`POST /v1/transcripts` (bearer key) records `webhook_url` and `metadata`; `GET /v1/transcripts/{id}`
serves the transcript object. Callbacks are Standard Webhooks envelopes
`{"type": "transcript.completed" | "transcript.failed", "timestamp", "data": <transcript>}`, signed
with `webhook_secret` (a `whsec_…` secret, via `routes.signing`) when the fake has one.
Variants: `bare=True` posts the transcript object without the envelope; `thin=True` leaves out
text, words and utterances (the receiver must fetch them).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.model import iso
from routes.signing import secret_key, signature_header
from tests.fakes.base import (
    CallbackRequest,
    FakeJob,
    FakeProvider,
    fixture,
    json_bytes,
    unauthorized,
    unavailable,
)


class GenericFake(FakeProvider):
    name = "generic"

    def routes(self) -> list[Route]:
        return [
            Route("/v1/transcripts", self.create, methods=["POST"]),
            Route("/v1/transcripts/{transcript_id}", self.retrieve, methods=["GET"]),
        ]

    def new_id(self) -> str:
        return "transcript_" + uuid.uuid4().hex[:12]

    def document(self, job: FakeJob) -> dict[str, Any]:
        """The transcript object in the job's current state."""
        doc: dict[str, Any]
        if job.status == "completed":
            doc = fixture("generic", "transcript_completed.json")
        elif job.status == "failed":
            doc = fixture("generic", "transcript_failed.json")
        else:
            doc = {"object": "transcript", "status": "queued", "text": None, "words": [], "utterances": []}
        doc.update(id=job.id, metadata=dict(job.metadata))
        return doc

    async def create(self, request: Request) -> Response:
        body = await self.record(request)
        if not self.authorized(request, "Bearer "):
            return unauthorized()
        data = msgspec.json.decode(body)
        if not data.get("audio_url"):
            return JSONResponse(
                {"error": {"code": "invalid_request", "message": "audio_url is required"}}, 400
            )
        options = {k: v for k, v in data.items() if k not in ("audio_url", "webhook_url", "metadata")}
        job = self.add_job(
            callback_url=data.get("webhook_url"),
            options=options,
            metadata=dict(data.get("metadata") or {}),
            request=data,
        )
        return JSONResponse(self.document(job), status_code=201)

    async def retrieve(self, request: Request) -> Response:
        await self.record(request)
        if not self.authorized(request, "Bearer "):
            return unauthorized()
        job = self.job_or_404(request.path_params["transcript_id"])
        if isinstance(job, Response):
            return job
        if self.take_failure():
            return unavailable()
        return JSONResponse(self.document(job))

    def callback_request(
        self, job: FakeJob, status: str, *, bare: bool = False, thin: bool = False
    ) -> CallbackRequest:
        if job.callback_url is None:
            raise ValueError(f"job {job.id} has no webhook_url")
        data = self.document(job)
        if thin:
            for key in ("text", "words", "utterances"):
                data.pop(key, None)
        now = int(time.time())
        event = {"type": f"transcript.{job.status}", "timestamp": iso(now), "data": data}
        body = json_bytes(data if bare else event)
        headers = {"content-type": "application/json", "user-agent": "generic-transcripts/1.0"}
        if self.webhook_secret:
            msg_id = job.extra.setdefault(f"msg:{status}", "msg_" + uuid.uuid4().hex)
            headers.update(
                {
                    "webhook-id": msg_id,
                    "webhook-timestamp": str(now),
                    "webhook-signature": signature_header(
                        [secret_key(self.webhook_secret)], msg_id, now, body
                    ),
                }
            )
        return CallbackRequest("POST", job.callback_url, headers, body)
