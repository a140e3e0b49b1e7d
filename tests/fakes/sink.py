"""A callback sink: a real server that records whatever a fake provider calls back with.

Provider unit tests use it in place of Callboard's receiver: the recorded request becomes the
`Inbound` an adapter sees (lower-case headers, first value per query key, raw body) and the
`StoredCallback` it resolves, with no code of Callboard's own in between.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.providers.base import Inbound, StoredCallback
from tests.servers import serve_in_thread


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes

    def inbound(self, provider: str, *, job_id: str | None = None, job_secret: str | None = None) -> Inbound:
        return Inbound(provider, self.method, self.headers, self.query, self.body, job_id, job_secret)

    def stored(
        self, provider: str, *, job_id: str | None = None, provider_job_id: str | None = None
    ) -> StoredCallback:
        headers = {k: ("[redacted]" if k == "authorization" else v) for k, v in self.headers.items()}
        return StoredCallback(
            id=f"cb_test{next(_ids)}",
            provider=provider,
            job_id=job_id,
            provider_job_id=provider_job_id,
            method=self.method,
            headers=headers,
            query=self.query,
            body=self.body,
        )


_ids = itertools.count(1)


class CallbackSink:
    """Records every request to any path and answers `status_code` (200 by default)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status_code = 200
        self.url = ""
        self.app = Starlette(
            routes=[Route("/{path:path}", self.receive, methods=["POST", "PUT", "GET", "PATCH"])]
        )

    async def receive(self, request: Request) -> Response:
        query: dict[str, str] = {}
        for key, value in request.query_params.multi_items():
            query.setdefault(key, value)
        self.received.append(
            Received(
                method=request.method,
                path=request.url.path,
                headers={k.lower(): v for k, v in request.headers.items()},
                query=query,
                body=await request.body(),
            )
        )
        return JSONResponse({"ok": True}, status_code=self.status_code)

    def last(self) -> Received:
        assert self.received, "the sink received nothing"
        return self.received[-1]


@contextlib.contextmanager
def running_sink() -> Iterator[CallbackSink]:
    sink = CallbackSink()
    with serve_in_thread(sink.app) as url:
        sink.url = url
        yield sink
