"""A real subscriber: an HTTP server on 127.0.0.1 that receives Callboard's webhooks, as a consumer would.

    with running_subscriber() as sub:
        sub.script(Reply(500), Reply(500))        # the next two requests fail, then the default (200)
        ...                                       # point a subscription at sub.url
        [got] = sub.wait_for(1)
        got.verify(secret)                        # standardwebhooks AND svix, unchanged

It records every request on arrival (headers, raw body, arrival time) before answering, so a
request that is still being answered slowly, or whose sender was killed, is visible too. Answers
come from a script (one `Reply` per request, in order) and then from `default`. A `Reply` can
delay its answer (a slow subscriber), set headers (`Retry-After`, `Location`) and a body.

`closed_url()` is a URL on 127.0.0.1 where nothing listens (connections are refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import standardwebhooks
import svix.webhooks
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.servers import free_port, serve_in_thread


@dataclass(frozen=True)
class Reply:
    """How the subscriber answers one request."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok": true}'
    #: seconds to wait before answering (the sender may time out first)
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def signatures(self) -> list[str]:
        return self.headers["webhook-signature"].split()

    def json(self) -> Any:
        return json.loads(self.body)

    def verify(self, secret: str) -> Any:
        """Verify with both consumer libraries, exactly as a subscriber would; return the payload."""
        payload = standardwebhooks.Webhook(secret).verify(self.body, self.headers)
        svix.webhooks.Webhook(secret).verify(self.body, self.headers)
        return payload

    def verifies(self, secret: str) -> bool:
        """Whether BOTH libraries accept the request with `secret` (and neither when not)."""
        results = []
        for verify in (
            lambda: standardwebhooks.Webhook(secret).verify(self.body, self.headers),
            lambda: svix.webhooks.Webhook(secret).verify(self.body, self.headers),
        ):
            try:
                verify()
            except (
                standardwebhooks.webhooks.WebhookVerificationError,
                svix.webhooks.WebhookVerificationError,
            ):
                results.append(False)
            else:
                results.append(True)
        assert results[0] == results[1], f"the libraries disagree: {results}"
        return results[0]


class Subscriber:
    """A scripted webhook endpoint. Thread-safe: the server runs in its own thread."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or Reply()
        self.base_url = ""
        self._script: deque[Reply] = deque()
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._closing = False
        self._in_flight = 0
        #: the most requests that were being answered at the same time
        self.max_concurrent = 0
        self.app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST", "GET", "PUT"])])

    @property
    def url(self) -> str:
        """The URL to subscribe."""
        return f"{self.base_url}/hook"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with `replies`, in order, then with `default` again."""
        with self._lock:
            self._script.extend(replies)

    def answer(self, reply: Reply) -> None:
        """Answer every request (after the script) with `reply`."""
        with self._lock:
            self.default = reply

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def webhook_ids(self) -> list[str]:
        return [r.webhook_id for r in self.received]

    def wait_for(self, count: int, *, timeout: float = 15.0) -> list[Received]:
        """Block until at least `count` requests arrived; return all of them."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.received
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"subscriber got {len(got)} requests in {timeout} s, expected {count}")
            time.sleep(0.02)

    def wait_for_id(self, webhook_id: str, *, timeout: float = 15.0) -> Received:
        deadline = time.monotonic() + timeout
        while True:
            for r in self.received:
                if r.webhook_id == webhook_id:
                    return r
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"subscriber never got {webhook_id} in {timeout} s (got {self.webhook_ids()})"
                )
            time.sleep(0.02)

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        received = Received(
            request.url.path, {k.lower(): v for k, v in request.headers.items()}, body, time.time()
        )
        with self._lock:
            self._received.append(received)
            reply = self._script.popleft() if self._script else self.default
            self._in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self._in_flight)
        try:
            deadline = time.monotonic() + reply.delay
            while not self._closing and time.monotonic() < deadline:  # a slow answer that shutdown can cut
                await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        finally:
            with self._lock:
                self._in_flight -= 1
        return Response(
            reply.body, status_code=reply.status, headers=dict(reply.headers), media_type="application/json"
        )

    def close(self) -> None:
        self._closing = True


@contextlib.contextmanager
def running_subscriber(default: Reply | None = None) -> Iterator[Subscriber]:
    """Serve a `Subscriber` on 127.0.0.1 for the block."""
    sub = Subscriber(default)
    with serve_in_thread(sub.app) as url:
        sub.base_url = url
        try:
            yield sub
        finally:
            sub.close()


def closed_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting is refused at once."""
    return f"http://127.0.0.1:{free_port()}/hook"


# -- driving Callboard: subscriptions and events through the real admin API -------------------------


def subscribe(cb: Any, url: str, **fields: Any) -> dict[str, Any]:
    """`POST /v1/subscriptions` on a running `CallboardProcess`; the answer holds the secret."""
    response = cb.http.post("/v1/subscriptions", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def emit(cb: Any, fake: Any, *, status: str = "completed", **metadata: Any) -> str:
    """Make one event happen the way it does in production: a `generic` job, then the provider's
    callback. Returns the event id once the event is stored."""
    response = cb.http.post(
        "/v1/jobs",
        json={"provider": "generic", "audio_url": "https://example.com/a.wav", "metadata": metadata},
    )
    assert response.status_code == 201, response.text
    job = response.json()
    [answer] = fake.callback(job["provider_job_id"], status=status)
    assert answer.status_code == 200, answer.text
    cb.wait_job(job["id"], status)
    [event] = cb.events(job_id=job["id"])
    event_id: str = event["id"]
    return event_id


def deliveries(cb: Any, **params: str) -> list[dict[str, Any]]:
    """`GET /v1/deliveries` (first page of 500)."""
    response = cb.http.get("/v1/deliveries", params={"limit": "500", **params})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def delivery(cb: Any, delivery_id: str) -> dict[str, Any]:
    """`GET /v1/deliveries/{id}`: the delivery with its `attempt_log`."""
    response = cb.http.get(f"/v1/deliveries/{delivery_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def wait_delivery(cb: Any, *, status: str, timeout: float = 15.0, **params: str) -> dict[str, Any]:
    """Wait until the one delivery selected by `params` (event_id, subscription_id) is `status`."""
    deadline = time.monotonic() + timeout
    while True:
        found = deliveries(cb, **params)
        if len(found) == 1 and found[0]["status"] == status:
            return delivery(cb, found[0]["id"])
        if time.monotonic() > deadline:
            raise AssertionError(f"no single {status} delivery for {params} in {timeout} s: {found}")
        time.sleep(0.05)


def launch(
    stack: contextlib.ExitStack, tmp: Any, fake: Any, database_url: str | None = None, **env: str
) -> Any:
    """Start a real `callboard serve` (a `CallboardProcess`) on `database_url` (a SQLite file in
    `tmp` by default) with the `generic` fake and extra settings given without their prefix
    (`DELIVERY_TIMEOUT="2"`); it stops when `stack` closes."""
    from tests.harness import CallboardProcess

    cb = CallboardProcess(
        tmp,
        fakes={"generic": fake},
        database_url=database_url,
        env={f"CALLBOARD_{k}": v for k, v in env.items()},
    )
    return stack.enter_context(cb)


def db_rows(cb: Any, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run one query (`?` placeholders) on the process's database, whichever the backend, as an
    operator with database access would; rows come back as dicts."""
    from storage.store import open_store

    async def go() -> list[dict[str, Any]]:
        async with (
            open_store(cb.env["CALLBOARD_DATABASE_URL"], migrate=False) as store,
            store.db.read() as db,
        ):
            return [dict(row) for row in await db.fetch(sql, *args)]

    return asyncio.run(go())
