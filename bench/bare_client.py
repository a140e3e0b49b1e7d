"""The fan-out ceilings: a bare aiohttp session (or httpx client) posting signed events to the sink.

Run as a process of its own on the server core (where Callboard's delivery worker runs):

    python -m bench.bare_client SPEC.json

SPEC: `{"kind": "aiohttp"|"httpx", "urls": [...], "keys": [base64...], "payload": base64,
"events": n, "concurrency": n}`. It posts `events` events to every URL (event by event), with
`concurrency` requests in flight, after a short warm-up that opens the connections. Every
request is signed as Callboard signs a delivery (Standard Webhooks headers, per attempt). It
prints a JSON summary; the sink, in the benchmark's process, measures the rate.
"""

from __future__ import annotations

import asyncio
import base64
import json
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from routes.signing import signature_header
from routes.worker import USER_AGENT

Post = Callable[[str, bytes, dict[str, str]], Awaitable[int]]


def headers(key: bytes, msg_id: str, body: bytes) -> dict[str, str]:
    ts = int(time.time())
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header([key], msg_id, ts, body),
    }


async def drive(
    post: Post, urls: list[str], keys: list[bytes], payload: bytes, events: int, concurrency: int
) -> tuple[float, float]:
    async def run(prefix: str, n_events: int) -> tuple[float, float]:
        todo = [(f"evt_{prefix}_{e:06d}", u, k) for e in range(n_events) for u, k in zip(urls, keys, strict=True)]
        todo.reverse()

        async def worker() -> None:
            while todo:
                msg_id, url, key = todo.pop()
                await post(url, payload, headers(key, msg_id, payload))

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, time.process_time() - cpu

    await run("bare_warm", max(1, -(-concurrency * 2 // len(urls))))
    await asyncio.sleep(0.2)
    return await run("bare_run", events)


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    urls: list[str] = spec["urls"]
    keys = [base64.b64decode(k) for k in spec["keys"]]
    payload = base64.b64decode(spec["payload"])
    concurrency = int(spec["concurrency"])
    statuses: dict[int, int] = {}

    async def measure(post: Post) -> tuple[float, float]:
        return await drive(post, urls, keys, payload, int(spec["events"]), concurrency)

    if spec["kind"] == "aiohttp":
        import aiohttp

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

            async def post_aiohttp(url: str, body: bytes, hdrs: dict[str, str]) -> int:
                async with session.post(url, data=body, headers=hdrs, allow_redirects=False) as resp:
                    await resp.content.read(1024)
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                    return resp.status

            elapsed = await measure(post_aiohttp)
    else:
        import httpx

        limits = httpx.Limits(max_connections=max(concurrency, 1), max_keepalive_connections=max(concurrency, 1))
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

            async def post_httpx(url: str, body: bytes, hdrs: dict[str, str]) -> int:
                resp = await client.post(url, content=body, headers=hdrs)
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                return resp.status_code

            elapsed = await measure(post_httpx)
    return {
        "kind": spec["kind"],
        "concurrency": concurrency,
        "client_elapsed_s": elapsed[0],
        "client_cpu_s": elapsed[1],
        "statuses": {str(k): v for k, v in statuses.items()},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # Linux: kB
    }


if __name__ == "__main__":
    import uvloop

    with open(sys.argv[1]) as f:
        spec_ = json.load(f)
    print(json.dumps(uvloop.run(main(spec_))))
