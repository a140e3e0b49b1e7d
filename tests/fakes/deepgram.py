"""Fake Deepgram: `POST /v1/listen?callback=…` answering `{"request_id"}`, then a full-result callback.

The API key goes in `Authorization: Token <key>`; the audio URL in the JSON body `{"url"}`; all
options, `callback_method` and repeated `extra=key:value` in the query string. The callback goes to
the `callback` URL without its user info, which is sent instead as `Authorization: Basic …`
(as Deepgram does), with `metadata.extra` echoing the `extra` pairs. A failed job calls back with
`{"err_code", "err_msg", "request_id"}`. Without `callback` the result is answered synchronously.
`enforce_ports = True` refuses callback URLs on ports other than 80, 443, 8080, 8443 (off by
default, since test servers listen on random ports). Variant: `empty_body=True`.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.base import CallbackRequest, FakeJob, FakeProvider, fixture, json_bytes

ALLOWED_PORTS = {80, 443, 8080, 8443}


class DeepgramFake(FakeProvider):
    name = "deepgram"
    enforce_ports = False

    def routes(self) -> list[Route]:
        return [Route("/v1/listen", self.listen, methods=["POST"])]

    def result(self, job: FakeJob) -> dict[str, Any]:
        doc: dict[str, Any]
        if job.status == "failed":
            doc = fixture("deepgram", "callback_error.json")
            doc["request_id"] = job.id
            return doc
        doc = fixture("deepgram", "callback_success.json")
        doc["metadata"].update(request_id=job.id, extra=dict(job.extra.get("extras", {})))
        return doc

    async def listen(self, request: Request) -> Response:
        body = await self.record(request)
        if not self.authorized(request, "Token "):
            return JSONResponse({"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}, 401)
        url = msgspec.json.decode(body).get("url")
        if not url:
            return JSONResponse({"err_code": "Bad Request", "err_msg": "url is required"}, 400)
        query = request.query_params
        extras = dict(e.partition(":")[::2] for e in query.getlist("extra"))
        options = {k: v for k, v in query.multi_items() if k not in ("callback", "callback_method", "extra")}
        callback = query.get("callback")
        job = self.add_job(
            str(uuid.uuid4()),
            options=options,
            metadata=dict(extras),
            request={"url": url, "query": list(query.multi_items())},
            method=query.get("callback_method", "POST").upper(),
            extra={"extras": extras},
        )
        if callback is None:  # synchronous request
            job.status = "completed"
            return JSONResponse(self.result(job))
        parts = urlsplit(callback)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if self.enforce_ports and port not in ALLOWED_PORTS:
            del self.jobs[job.id]
            return JSONResponse(
                {"err_code": "Bad Request", "err_msg": f"Invalid callback URL {callback}"}, 400
            )
        if parts.username is not None:
            user, password = unquote(parts.username), unquote(parts.password or "")
            job.secret = password
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            job.callback_headers = {"authorization": f"Basic {token}"}
        job.callback_url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        return JSONResponse({"request_id": job.id})

    def callback_request(self, job: FakeJob, status: str, *, empty_body: bool = False) -> CallbackRequest:
        if job.callback_url is None:
            raise ValueError(f"request {job.id} had no callback")
        headers = {"content-type": "application/json", "user-agent": "Deepgram", **job.callback_headers}
        content = b"" if empty_body else json_bytes(self.result(job))
        return CallbackRequest(job.method, job.callback_url, headers, content)
