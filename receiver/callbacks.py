"""The inbound endpoint: `POST|PUT /callbacks/{provider}/{token}` and `POST /callbacks/{provider}`.

Read the raw body once (refusing it past the size limit), verify the token and the provider's own
mechanism, store the callback with its headers (credentials redacted), and only then answer 200.
Processing happens later, in the processor; a genuine callback that fails there is still
acknowledged, because some providers stop retrying on any 4xx.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Any

import msgspec
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver import metrics
from receiver.exceptions import CallboardError, NotFoundError, UnusableBodyError, VerificationError
from receiver.providers import REGISTRY
from receiver.providers.base import Inbound, Provider
from receiver.service import Service
from storage.ids import new_id
from storage.records import NewCallback

log = structlog.get_logger("callboard.callbacks")

ALWAYS_REDACTED = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})
REDACTED = "[redacted]"


@functools.cache
def _counter(provider: str, outcome: str) -> Any:
    """The labelled child of the callbacks counter (looked up once per provider and outcome)."""
    return metrics.CALLBACKS.labels(provider, outcome)


@functools.cache
def _redacted_for(extra: frozenset[str]) -> frozenset[str]:
    return ALWAYS_REDACTED | extra


def _redacted(adapter: Provider) -> frozenset[str]:
    return _redacted_for(frozenset(adapter.secret_headers))


class BodyTooLargeError(CallboardError):
    code = "body_too_large"
    status_code = 413


def request_headers(request: Request) -> dict[str, str]:
    """The request's headers by lower-case name (the first value of a repeated one), as
    `dict(request.headers)` gives them, built straight from the ASGI scope."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.scope["headers"]:
        name = raw_name.decode("latin-1")
        if name not in headers:
            headers[name] = raw_value.decode("latin-1")
    return headers


async def read_body(request: Request, limit: int, headers: Mapping[str, str] | None = None) -> bytes:
    """The whole body, straight from the ASGI messages (Starlette's `stream()` without its layers)."""
    declared = (headers if headers is not None else request.headers).get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"the body is larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise UnusableBodyError("the client disconnected before sending the whole body")
        if message["type"] != "http.request":
            continue
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"the body is larger than the limit of {limit} bytes")
        if not message.get("more_body", False):
            if not chunks:
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


async def receive(request: Request) -> Response:
    started = time.perf_counter()
    provider = request.path_params["provider"]
    token: str | None = request.path_params.get("token")
    outcome, job_id, debug = "error", None, False
    try:
        state = request.app.state  # looked up once: each attribute of a Starlette State costs ~0.8 µs
        svc: Service = state.service
        debug = svc.settings.log_level == "debug"
        adapter = svc.adapter(provider)
        if token is None and not adapter.provider_level:
            raise NotFoundError(
                f"{provider} callbacks go to their per-job URL /callbacks/{provider}/{{token}}"
            )
        headers = request_headers(request)  # ASGI servers lower-case names
        body = await read_body(request, svc.settings.max_body_bytes, headers)
        job_secret = None
        if token is not None:
            job_id = svc.tokens.verify(token, provider)
            if adapter.uses_job_secret:
                job_secret = svc.tokens.job_secret(job_id, provider)
        query = dict(request.query_params) if request.scope.get("query_string") else {}
        inbound = Inbound(provider, request.method, headers, query, body, job_id, job_secret)
        adapter.authenticate(inbound)
        identity = adapter.identify(inbound)
        secret_headers = _redacted(adapter)
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
            state.wake_processor()
        return Response(
            msgspec.json.encode({"id": result.id, "duplicate": result.duplicate}),
            media_type="application/json",
        )
    except CallboardError as exc:
        outcome = exc.code
        raise
    finally:
        latency = time.perf_counter() - started
        _counter(provider if provider in REGISTRY else "unknown", outcome).inc()
        metrics.CALLBACK_LATENCY.observe(latency)
        # A stored callback gets its info line from the processor (`callback.processed`, with its
        # id, job and outcome) moments later, and its handler latency is in the metrics, so its
        # line here is debug; what is not stored (refused, malformed, a provider's retry answered
        # as a duplicate) has no other line, and is logged at info. The level is checked here
        # first: a line at a filtered level still costs about 1 µs (the lazy logger's lookup,
        # the keyword arguments, the no-op call).
        if outcome != "stored" or debug:
            emit = log.debug if outcome == "stored" else log.info
            emit("callback", provider=provider, job=job_id, outcome=outcome, latency_ms=round(latency * 1000, 2))


#: the inbound endpoint's routes: per-job URLs, and the workspace webhooks of Recall and Gladia
ROUTES = [
    Route("/callbacks/{provider}/{token}", receive, methods=["POST", "PUT"]),
    Route("/callbacks/{provider}", receive, methods=["POST", "PUT"]),
]
