"""Fake Speechmatics batch API: multipart `POST /v2/jobs`, job info, json-v2 transcripts, notifications.

`POST /v2/jobs` (bearer key) takes a multipart form whose `config` field is the job config (JSON
string) and needs `fetch_data` (or a `data_file` part); it answers `{"id"}` with 201.
`GET /v2/jobs/{id}` answers `{"job": …}` (`running`, `done`, `rejected` with `errors`) and
`GET /v2/jobs/{id}/transcript?format=json-v2` the transcript once done. Each entry of
`notification_config` is called (in order) with `?id=<job>&status=<outcome>` appended to its URL,
its `method`, its `auth_headers` (`"Name: value"` strings) and `User-Agent: Speechmatics-API/2.0`;
the body follows `contents`: the json-v2 transcript (`transcript`) or job info (`jobinfo`) on
success, job info or nothing on error.
"""

from __future__ import annotations

import json
import secrets
import string
from typing import Any
from urllib.parse import urlencode

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

OUTCOMES = {"completed": "success", "failed": "error"}
JOB_STATUS = {"queued": "running", "completed": "done", "failed": "rejected"}


class SpeechmaticsFake(FakeProvider):
    name = "speechmatics"
    STATES = {
        "completed": "completed",
        "success": "completed",
        "failed": "failed",
        "error": "failed",
        "fetch_error": "failed",
        "trim_error": "failed",
    }

    def routes(self) -> list[Route]:
        return [
            Route("/v2/jobs", self.create, methods=["POST"]),
            Route("/v2/jobs/{job_id}", self.retrieve, methods=["GET"]),
            Route("/v2/jobs/{job_id}/transcript", self.transcript, methods=["GET"]),
        ]

    def new_id(self) -> str:
        return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10))

    def job_info(self, job: FakeJob) -> dict[str, Any]:
        doc: dict[str, Any] = fixture(
            "speechmatics", "job_rejected.json" if job.status == "failed" else "job_done.json"
        )
        info: dict[str, Any] = doc["job"]
        info.update(id=job.id, status=JOB_STATUS[job.status])
        if job.request:
            info["config"] = job.request
        return info

    def document(self, job: FakeJob) -> dict[str, Any]:
        doc: dict[str, Any] = fixture("speechmatics", "transcript.json")
        doc["job"]["id"] = job.id
        doc["job"]["tracking"] = (job.request or {}).get("tracking", doc["job"]["tracking"])
        return doc

    async def create(self, request: Request) -> Response:
        await self.record(request)
        if not self.authorized(request, "Bearer "):
            return unauthorized()
        async with request.form() as form:
            raw = form.get("config")
            has_file = form.get("data_file") is not None
        if not isinstance(raw, str):
            return JSONResponse({"code": 400, "error": "Job config is missing"}, 400)
        config = json.loads(raw)
        if not has_file and not (config.get("fetch_data") or {}).get("url"):
            return JSONResponse({"code": 400, "error": "No data file or fetch_data url"}, 400)
        notifications = config.get("notification_config") or []
        first = notifications[0] if notifications else {}
        job = self.add_job(
            callback_url=first.get("url"),
            method=str(first.get("method", "post")).upper(),
            callback_headers=dict(h.split(": ", 1) for h in first.get("auth_headers") or []),
            options=dict(config.get("transcription_config") or {}),
            metadata=dict((config.get("tracking") or {}).get("details") or {}),
            request=config,
        )
        return JSONResponse({"id": job.id}, status_code=201)

    async def retrieve(self, request: Request) -> Response:
        await self.record(request)
        if not self.authorized(request, "Bearer "):
            return unauthorized()
        job = self.job_or_404(request.path_params["job_id"])
        if isinstance(job, Response):
            return job
        if self.take_failure():
            return unavailable()
        return JSONResponse({"job": self.job_info(job)})

    async def transcript(self, request: Request) -> Response:
        await self.record(request)
        if not self.authorized(request, "Bearer "):
            return unauthorized()
        job = self.job_or_404(request.path_params["job_id"])
        if isinstance(job, Response):
            return job
        if request.query_params.get("format", "json-v2") != "json-v2":
            return JSONResponse({"code": 400, "error": "this fake serves json-v2 only"}, 400)
        if self.take_failure():
            return unavailable()
        if job.status != "completed":
            return JSONResponse({"code": 404, "error": "Job not found or transcript not available"}, 404)
        return JSONResponse(self.document(job))

    def callback_requests(self, job: FakeJob, status: str) -> list[CallbackRequest]:
        """One request per `notification_config` entry (Speechmatics sends them in parallel)."""
        outcome = OUTCOMES.get(status, status)
        entries = (job.request or {}).get("notification_config") or [
            {
                "url": job.callback_url,
                "method": job.method,
                "contents": ["transcript"],
                "auth_headers": [f"{k}: {v}" for k, v in job.callback_headers.items()],
            }
        ]
        requests = []
        for entry in entries:
            url = (
                entry["url"]
                + ("&" if "?" in entry["url"] else "?")
                + urlencode({"id": job.id, "status": outcome})
            )
            headers = {"user-agent": "Speechmatics-API/2.0", "content-type": "application/json"}
            headers.update(h.split(": ", 1) for h in entry.get("auth_headers") or [])
            contents = entry.get("contents") or []
            if outcome == "success" and "transcript" in contents:
                body = json_bytes(self.document(job))
            elif "jobinfo" in contents:
                body = json_bytes(self.job_info(job))
            else:
                body = b""
            requests.append(CallbackRequest(str(entry.get("method", "post")).upper(), url, headers, body))
        return requests

    def callback_request(self, job: FakeJob, status: str, *, empty_body: bool = False) -> CallbackRequest:
        request = self.callback_requests(job, status)[0]
        if empty_body:
            return CallbackRequest(request.method, request.url, request.headers, b"")
        return request
