"""Fake Aitronos: `/v1/audio/transcribe` envelopes, sentence/paragraph links, and a webhook.

The documented parts follow `seeds/004` (bearer token, `organization_id`, `transcription_options`,
`webhook {url, events}`, the `{success, data, billing, metadata, actions}` envelope, `trans_` ids).
The rest is ASSUMED, exactly as `receiver/providers/aitronos.py` assumes it: `actions.get_sentences`
/ `get_paragraphs` answer `{data: {sentences|paragraphs: [...]}}` with times in seconds, and the
webhook is `{"event": "transcription.completed" | "transcription.failed", "timestamp",
"data": {"transcription_id", "status"}}`, unsigned. Action links point at the fake itself, or at
`https://api.aitronos.com` when `foreign_links` is set (the adapter must not follow them there).
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
from tests.fakes.base import (
    CallbackRequest,
    FakeJob,
    FakeProvider,
    fixture,
    json_bytes,
    unauthorized,
    unavailable,
)

PRODUCTION = "https://api.aitronos.com"


def error_envelope(status: int, code: str, message: str) -> Response:
    error = {"code": code, "message": message, "type": "client_error", "status": status}
    return JSONResponse({"success": False, "error": error}, status_code=status)


class AitronosFake(FakeProvider):
    name = "aitronos"
    foreign_links = False

    def routes(self) -> list[Route]:
        return [
            Route("/v1/audio/transcribe", self.create, methods=["POST"]),
            Route("/v1/audio/transcribe/{tid}", self.retrieve, methods=["GET"]),
            Route("/v1/audio/transcribe/{tid}/sentences", self.sentences, methods=["GET"]),
            Route("/v1/audio/transcribe/{tid}/paragraphs", self.paragraphs, methods=["GET"]),
        ]

    def new_id(self) -> str:
        return "trans_" + uuid.uuid4().hex

    def envelope(self, job: FakeJob) -> dict[str, Any]:
        doc: dict[str, Any] = fixture(
            "aitronos",
            "transcription_failed.json" if job.status == "failed" else "transcription_completed.json",
        )
        doc["data"]["transcription_id"] = job.id
        if job.status == "queued":
            doc["data"]["status"] = "processing"
            doc["data"]["timestamps"]["completed_at"] = None
        link = f"{PRODUCTION if self.foreign_links else self.base_url}/v1/audio/transcribe/{job.id}"
        doc["actions"] = {"check_status": link}
        if job.status == "completed":
            doc["actions"].update(
                get_paragraphs=f"{link}/paragraphs",
                get_sentences=f"{link}/sentences",
                get_subtitles_srt=f"{link}/subtitles/srt",
                get_subtitles_vtt=f"{link}/subtitles/vtt",
                search=f"{link}/search",
            )
        return doc

    async def create(self, request: Request) -> Response:
        body = await self.record(request)
        if not self.authorized(request, "Bearer "):
            return error_envelope(401, "UNAUTHORIZED", "Invalid or missing access token.")
        data = msgspec.json.decode(body)
        if not str(data.get("organization_id", "")).startswith("org_"):
            return error_envelope(422, "INVALID_ORGANIZATION", "organization_id is required.")
        options = data.get("transcription_options") or {}
        if not options.get("audio_url") or not options.get("language"):
            return error_envelope(422, "VALIDATION_ERROR", "audio_url and language are required.")
        webhook = data.get("webhook") or {}
        job = self.add_job(
            callback_url=webhook.get("url"),
            options=options,
            request=data,
            extra={"events": list(webhook.get("events") or [])},
        )
        doc = self.envelope(job)
        doc["data"]["status"] = "queued"
        return JSONResponse(doc, status_code=201)

    async def _job(self, request: Request) -> FakeJob | Response:
        await self.record(request)
        if not self.authorized(request, "Bearer "):
            return unauthorized()
        job = self.job_or_404(request.path_params["tid"])
        if isinstance(job, Response):
            return job
        if self.take_failure():
            return unavailable()
        return job

    async def retrieve(self, request: Request) -> Response:
        job = await self._job(request)
        return job if isinstance(job, Response) else JSONResponse(self.envelope(job))

    async def sentences(self, request: Request, key: str = "sentences") -> Response:
        job = await self._job(request)
        if isinstance(job, Response):
            return job
        if job.status != "completed":
            return error_envelope(409, "TRANSCRIPTION_NOT_COMPLETED", "The transcription is not completed.")
        doc: dict[str, Any] = fixture("aitronos", "sentences.json")
        doc["data"]["transcription_id"] = job.id
        doc["data"][key] = doc["data"].pop("sentences")
        return JSONResponse(doc)

    async def paragraphs(self, request: Request) -> Response:
        return await self.sentences(request, key="paragraphs")

    def callback_request(self, job: FakeJob, status: str) -> CallbackRequest:
        if job.callback_url is None:
            raise ValueError(f"job {job.id} has no webhook")
        event = f"transcription.{job.status}"
        body = {
            "event": event,
            "timestamp": iso(time.time()),
            "data": {"transcription_id": job.id, "status": job.status},
        }
        return CallbackRequest(
            "POST", job.callback_url, {"content-type": "application/json"}, json_bytes(body)
        )
