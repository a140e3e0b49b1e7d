"""The subscriber side: a minimal HTTP/1.1 server (asyncio + httptools) that records deliveries.

It has to be much faster than what it measures, so it is not a framework: it parses requests
with httptools, answers `200 {"ok":true}` with keep-alive, and keeps per request the receive
time, the `webhook-id`, the path and the send time the event carries back (`bench_sent`).
With `verify` on, each delivery's Standard Webhooks signature is checked against the secret of
the subscription its path names (`/s/<n>`); a bad one is counted, never answered differently.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httptools

from bench.payloads import sent_time

RESPONSE = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'


@dataclass
class Record:
    received: list[float] = field(default_factory=list)
    sent: list[float | None] = field(default_factory=list)
    msg_ids: list[bytes] = field(default_factory=list)
    paths: list[bytes] = field(default_factory=list)


class _Connection(asyncio.Protocol):
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.sink.record(time.time(), self.url, self.headers, b"".join(self.body))
        self.transport.write(RESPONSE)
        if not self.parser.should_keep_alive():
            self.transport.close()


class Sink:
    def __init__(self, *, verify: bool = False) -> None:
        self.verify = verify
        self.keys: dict[bytes, bytes] = {}  # path → HMAC key
        self.rec = Record()
        self.bad_signatures = 0
        self.verified = 0
        self._target = 0
        self._reached = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self.url = ""

    async def start(self) -> Sink:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), "127.0.0.1", 0, backlog=4096)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def subscriber_url(self, n: int) -> str:
        return f"{self.url}/s/{n}"

    def register(self, n: int, key: bytes) -> None:
        self.keys[f"/s/{n}".encode()] = key

    def register_all(self, keys: Mapping[int, bytes]) -> None:
        for n, key in keys.items():
            self.register(n, key)

    # -- recording ---------------------------------------------------------------------------

    def record(self, now: float, path: bytes, headers: Mapping[bytes, bytes], body: bytes) -> None:
        rec = self.rec
        rec.received.append(now)
        rec.sent.append(sent_time(body))
        rec.msg_ids.append(headers.get(b"webhook-id", b""))
        rec.paths.append(path)
        if self.verify:
            self._check(path, headers, body)
        if self._target and len(rec.received) >= self._target:
            self._reached.set()

    def _check(self, path: bytes, headers: Mapping[bytes, bytes], body: bytes) -> None:
        key = self.keys.get(path)
        msg_id, ts, sigs = (
            headers.get(b"webhook-id"),
            headers.get(b"webhook-timestamp"),
            headers.get(b"webhook-signature"),
        )
        if key is None or not (msg_id and ts and sigs):
            self.bad_signatures += 1
            return
        expected = base64.b64encode(hmac.new(key, msg_id + b"." + ts + b"." + body, hashlib.sha256).digest())
        if any(s.partition(b",")[2] == expected for s in sigs.split(b" ")):
            self.verified += 1
        else:
            self.bad_signatures += 1

    def reset(self) -> None:
        self.rec = Record()
        self.bad_signatures = self.verified = 0
        self._target = 0
        self._reached.clear()

    @property
    def count(self) -> int:
        return len(self.rec.received)

    async def wait_for(self, n: int, timeout: float) -> bool:
        """Wait until `n` requests have arrived since the last reset; False on timeout."""
        if self.count >= n:
            return True
        self._target = n
        self._reached.clear()
        try:
            await asyncio.wait_for(self._reached.wait(), timeout)
        except TimeoutError:
            return False
        finally:
            self._target = 0
        return True
