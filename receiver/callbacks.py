"""The inbound endpoint: `POST|PUT /callbacks/{provider}/{token}` and `POST /callbacks/{provider}`.

Read the raw body once (refusing it past the size limit), verify the token and the provider's own
mechanism, store the callback with its headers (credentials redacted), and only then answer 200.
Processing happens later, in the processor; a genuine callback that fails there is still
acknowledged, because some providers stop retrying on any 4xx.
"""

from __future__ import annotations

import time

import msgspec
import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from receiver import metrics
from receiver.api.common import service
from receiver.exceptions import CallboardError, NotFoundError, UnusableBodyError, VerificationError
from receiver.providers import REGISTRY
from receiver.providers.base import Inbound
from storage.ids import new_id
from storage.records import NewCallback

log = structlog.get_logger("callboard.callbacks")

ALWAYS_REDACTED = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})
REDACTED = "[redacted]"


class BodyTooLargeError(CallboardError):
    code = "body_too_large"
    status_code = 413


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"the body is larger than the limit of {limit} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLargeError(f"the body is larger than the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise UnusableBodyError("the client disconnected before sending the whole body") from None
    return b"".join(chunks)


async def receive(request: Request) -> Response:
    started = time.perf_counter()
    provider = request.path_params["provider"]
    token: str | None = request.path_params.get("token")
    outcome, job_id = "error", None
    try:
        svc = service(request)
        adapter = svc.adapter(provider)
        if token is None and not adapter.provider_level:
            raise NotFoundError(f"{provider} callbacks go to their per-job URL /callbacks/{provider}/{{token}}")
        body = await read_body(request, svc.settings.max_body_bytes)
        job_secret = None
        if token is not None:
            job_id = svc.tokens.verify(token, provider)
            job_secret = svc.tokens.job_secret(job_id, provider)
        headers = dict(request.headers)  # starlette lower-cases names
        query = dict(request.query_params)
        inbound = Inbound(provider, request.method, headers, query, body, job_id, job_secret)
        adapter.authenticate(inbound)
        identity = adapter.identify(inbound)
        secret_headers = ALWAYS_REDACTED | adapter.secret_headers
        stored_headers = {k: (REDACTED if k in secret_headers else v) for k, v in headers.items()}
        now = time.time()
        result = await svc.store.ingest(
            NewCallback(
                id=new_id("cb", now),
                provider=provider,
                dedupe_key=identity.dedupe_key,
                job_id=job_id,
                provider_job_id=identity.provider_job_id,
                job_hint=identity.job_hint,
                method=request.method,
                headers=stored_headers,
                query=query,
                body=body,
                received_at=now,
            )
        )
        if result.unknown_job:
            raise VerificationError("the callback token names a job that does not exist")
        outcome = "duplicate" if result.duplicate else "stored"
        if not result.duplicate:
            request.app.state.wake_processor()
        return Response(
            msgspec.json.encode({"id": result.id, "duplicate": result.duplicate}), media_type="application/json"
        )
    except CallboardError as exc:
        outcome = exc.code
        raise
    finally:
        latency = time.perf_counter() - started
        metrics.CALLBACKS.labels(provider if provider in REGISTRY else "unknown", outcome).inc()
        metrics.CALLBACK_LATENCY.observe(latency)
        log.info("callback", provider=provider, job=job_id, outcome=outcome, latency_ms=round(latency * 1000, 2))
