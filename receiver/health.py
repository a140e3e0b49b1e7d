"""`/healthz` (the process is up), `/readyz` (the database answers), `/metrics` (Prometheus)."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from receiver.api.common import json_response, service
from routes.metrics import REGISTRY


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await asyncio.wait_for(service(request).store.ping(), timeout=2.0)
    except Exception as exc:
        return json_response(
            {"status": "unavailable", "database": f"{type(exc).__name__}: {exc}"[:300]}, status_code=503
        )
    return json_response({"status": "ready", "database": "ok"})


async def metrics(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
