"""Fake Gladia v2: `POST /v2/pre-recorded`, `GET /v2/pre-recorded/{id}`, full-result callbacks.

The API key goes in `x-gladia-key`. The callback goes to `callback_config.url` with
`callback_config.method` (POST or PUT), unsigned, with the whole result in `payload`.
Variants: `legacy_events=True` uses the help-center spellings `success` / `error`;
`payload=False` leaves the result out (the receiver must fetch it). `account_webhook()` sends the thin
account-level webhook `{"event", "payload": {"id"}}` to `webhook_url`.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

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


class GladiaFake(FakeProvider):
    name = "gladia"
    STATES = {
        "completed": "completed",
        "success": "completed",
        "failed": "failed",
        "error": "failed",
        "processing": "queued",
    }

    def routes(self) -> list[Route]:
        return [
            Route("/v2/pre-recorded", self.create, methods=["POST"]),
            Route("/v2/pre-recorded/{job_id}", self.retrieve, methods=["GET"]),
        ]

    def document(self, job: FakeJob) -> dict[str, Any]:
        doc: dict[str, Any]
        if job.status == "completed":
            doc = fixture("gladia", "result_done.json")
        elif job.status == "failed":
            doc = fixture("gladia", "result_error.json")
        else:
            doc = {"status": "processing", "result": None, "error_code": None, "kind": "pre-recorded"}
        doc.update(id=job.id, custom_metadata=dict(job.metadata))
        return doc

    async def create(self, request: Request) -> Response:
        body = await self.record(request)
        if not self.authorized(request, "", header="x-gladia-key"):
            return unauthorized()
        data = msgspec.json.decode(body)
        if not data.get("audio_url"):
            return JSONResponse({"statusCode": 400, "message": "audio_url is required"}, status_code=400)
        config = data.get("callback_config") or {}
        job = self.add_job(
            callback_url=config.get("url") if data.get("callback") else None,
            method=str(config.get("method") or "POST"),
            metadata=dict(data.get("custom_metadata") or {}),
            options={k: v for k, v in data.items() if k not in ("callback_config", "custom_metadata")},
            request=data,
        )
        return JSONResponse(
            {"id": job.id, "result_url": f"{self.base_url}/v2/pre-recorded/{job.id}"}, status_code=201
        )

    async def retrieve(self, request: Request) -> Response:
        await self.record(request)
        if not self.authorized(request, "", header="x-gladia-key"):
            return unauthorized()
        job = self.job_or_404(request.path_params["job_id"])
        if isinstance(job, Response):
            return job
        if self.take_failure():
            return unavailable()
        return JSONResponse(self.document(job))

    def callback_request(
        self, job: FakeJob, status: str, *, legacy_events: bool = False, payload: bool = True
    ) -> CallbackRequest:
        if job.callback_url is None:
            raise ValueError(f"job {job.id} was submitted without a callback")
        body: dict[str, Any] = {"id": job.id}
        if job.status == "completed":
            body["event"] = "success" if legacy_events else "transcription.success"
            if payload:
                body["payload"] = fixture("gladia", "result_done.json")["result"]
        else:
            body["event"] = "error" if legacy_events else "transcription.error"
            body["error"] = fixture("gladia", "callback_error.json")["error"]
        body["custom_metadata"] = dict(job.metadata)
        headers = {"content-type": "application/json"}
        return CallbackRequest(job.method, job.callback_url, headers, json_bytes(body))

    def account_webhook(self, provider_job_id: str, event: str = "transcription.success") -> httpx.Response:
        """The thin account-level webhook, to `webhook_url` (which may carry a `?secret=`)."""
        if self.webhook_url is None:
            raise ValueError("set fake.webhook_url first")
        if event in ("transcription.success", "transcription.error"):
            self.finish(provider_job_id, event.removeprefix("transcription."))
        body = json_bytes({"event": event, "payload": {"id": provider_job_id}})
        headers = {"content-type": "application/json"}
        return httpx.post(self.webhook_url, headers=headers, content=body, timeout=CALLBACK_TIMEOUT)
