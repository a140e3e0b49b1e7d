"""The common shape of fake providers: a real Starlette app plus a way to call back like the provider.

Every fake serves its provider's API (submit and result endpoints) on 127.0.0.1 and records what
was submitted in `jobs`; `callback()` then calls the registered callback URL exactly as the
provider would (method, headers, signature, query string, body). Content comes from the
recorded-shape payloads in `tests/fixtures/<provider>/`, with the ids filled in.

    fake = AssemblyAIFake()
    with running(fake):
        ...  # point ProviderConfig(base_url=fake.base_url, api_key=fake.api_key) at it
        fake.callback(provider_job_id, status="completed")

Callback statuses are provider-neutral (`completed`, `failed`) or the provider's own names (e.g.
`processing` for recall, `fetch_error` for speechmatics); `STATES` of each fake lists them.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.servers import serve_in_thread

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CALLBACK_TIMEOUT = 10.0


def fixture(provider: str, name: str) -> Any:
    """A fresh copy of `tests/fixtures/<provider>/<name>` (JSON)."""
    return json.loads((FIXTURES / provider / name).read_text())


def fixture_bytes(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


@dataclass
class FakeJob:
    """What the fake provider knows about one job."""

    id: str
    callback_url: str | None = None
    method: str = "POST"
    #: headers the provider sends back with every callback (the per-job credential)
    callback_headers: dict[str, str] = field(default_factory=dict)
    #: the per-job secret as registered (auth header value, basic-auth password, `extra` value)
    secret: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: the decoded submit request (JSON body, or form/query for providers that use those)
    request: Any = None
    #: provider-neutral state: `queued`, `completed` or `failed`
    status: str = "queued"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallbackRequest:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


class FakeProvider:
    """Base of fake providers: subclasses set `name`, `STATES`, `routes()` and `callback_request()`."""

    name: ClassVar[str]
    #: callback status accepted by `callback()` → the provider-neutral job state it leaves behind
    STATES: ClassVar[Mapping[str, str]] = {"completed": "completed", "failed": "failed"}

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        webhook_secret: str | None = None,
        webhook_url: str | None = None,
    ) -> None:
        self.api_key = api_key
        #: provider-level signing secret (recall `whsec_…`, generic Standard Webhooks)
        self.webhook_secret = webhook_secret
        #: provider-level / workspace webhook endpoint (recall, gladia account webhooks)
        self.webhook_url = webhook_url
        self.jobs: dict[str, FakeJob] = {}
        #: result/fetch endpoints answer 503 this many times before succeeding
        self.result_failures = 0
        #: every API request the fake received, in order
        self.requests: list[RecordedRequest] = []
        self._base_url: str | None = None
        self._lock = threading.Lock()
        self.app = Starlette(routes=self.routes())

    # -- serving --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError(f"the {self.name} fake is not running; use `with running(fake):`")
        return self._base_url

    @base_url.setter
    def base_url(self, value: str | None) -> None:
        self._base_url = value

    def routes(self) -> list[Route]:
        raise NotImplementedError

    # -- jobs -----------------------------------------------------------------------------------

    def new_id(self) -> str:
        return str(uuid.uuid4())

    def add_job(self, job_id: str | None = None, **fields: Any) -> FakeJob:
        """Register a job the provider knows about (also: one Callboard never submitted)."""
        job = FakeJob(id=job_id or self.new_id(), **fields)
        self.jobs[job.id] = job
        return job

    def finish(self, provider_job_id: str, status: str = "completed") -> FakeJob:
        """Move a job to the state `status` leaves behind, without calling back (for polling)."""
        job = self.jobs[provider_job_id]
        if status not in self.STATES:
            raise ValueError(f"{self.name} fake: unknown status {status!r}; one of {sorted(self.STATES)}")
        job.status = self.STATES[status]
        return job

    # -- calling back ---------------------------------------------------------------------------

    #: `(job, status, **variant) -> CallbackRequest`: the request the provider would send for `job`
    #: reaching `status`; each fake defines it with its own keyword-only variants
    callback_request: Callable[..., CallbackRequest]

    def callback(
        self, provider_job_id: str, *, status: str = "completed", times: int = 1, **variant: Any
    ) -> list[httpx.Response]:
        """Call back exactly as the provider would, `times` times (a provider's retries)."""
        job = self.finish(provider_job_id, status)
        responses = []
        with httpx.Client(timeout=CALLBACK_TIMEOUT, follow_redirects=False) as client:
            for _ in range(times):
                req = self.callback_request(job, status, **variant)
                responses.append(
                    client.request(req.method, req.url, headers=req.headers, content=req.content)
                )
        return responses

    async def acallback(
        self, provider_job_id: str, *, status: str = "completed", times: int = 1, **variant: Any
    ) -> list[httpx.Response]:
        """`callback()` for async tests whose receiving app runs on the same event loop."""
        job = self.finish(provider_job_id, status)
        responses = []
        async with httpx.AsyncClient(timeout=CALLBACK_TIMEOUT, follow_redirects=False) as client:
            for _ in range(times):
                req = self.callback_request(job, status, **variant)
                responses.append(
                    await client.request(req.method, req.url, headers=req.headers, content=req.content)
                )
        return responses

    # -- helpers for the fake apps ---------------------------------------------------------------

    async def record(self, request: Request) -> bytes:
        body = await request.body()
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                query=list(request.query_params.multi_items()),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
            )
        )
        return body

    def authorized(self, request: Request, *accepted_prefixes: str, header: str = "authorization") -> bool:
        """The API key is present in `header`, after one of the prefixes (`"Bearer "`, `"Token "`, `""`)."""
        got = request.headers.get(header)
        return got is not None and any(got == prefix + self.api_key for prefix in accepted_prefixes or ("",))

    def take_failure(self) -> bool:
        """True when this result request must fail (counts `result_failures` down)."""
        with self._lock:
            if self.result_failures > 0:
                self.result_failures -= 1
                return True
            return False

    def job_or_404(self, provider_job_id: str) -> FakeJob | Response:
        job = self.jobs.get(provider_job_id)
        if job is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return job


def unavailable() -> Response:
    return JSONResponse({"error": "service unavailable"}, status_code=503)


def unauthorized() -> Response:
    return JSONResponse({"error": "unauthorized"}, status_code=401)


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


F = TypeVar("F", bound=FakeProvider)


@contextlib.contextmanager
def running(fake: F) -> Iterator[F]:
    """Serve `fake.app` on 127.0.0.1 for the block and set `fake.base_url`."""
    with serve_in_thread(fake.app) as url:
        fake.base_url = url
        try:
            yield fake
        finally:
            fake.base_url = None
