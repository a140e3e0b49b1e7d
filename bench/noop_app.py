"""The ingest ceiling: a Starlette app whose POST handler reads the body and answers, nothing else.

Same route shape and answer shape as Callboard's `/callbacks/{provider}/{token}`, served the
same way (uvicorn with uvloop and httptools, one worker, no access log).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ANSWER = b'{"id":"cb_00000000000000000000000000","duplicate":false}'


async def receive(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/callbacks/{provider}/{token}", receive, methods=["POST", "PUT"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)
