"""Load generators: wrk (closed loop), its Python fallback, and a Python open-loop generator.

* `run_wrk()` drives `bench/ingest.lua` over a file of pre-signed callbacks; wrk runs on the load
  core. Its summary comes back as one `BENCH_JSON` line.
* `closed_loop()` is the fallback when wrk is unavailable: the same requests from `connections`
  aiohttp connections, each sending its next request when the previous answer arrives. It is
  slower than wrk, so against a fast server it measures itself; the result says which was used.
* `open_loop()` sends at a fixed arrival rate whatever the server does (no coordinated omission:
  a slow answer does not delay the next request), each body carrying its send time.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.machine import Pinning
from bench.payloads import Signer, Template
from bench.stats import summarize

LUA = Path(__file__).with_name("ingest.lua")


@dataclass(frozen=True)
class Item:
    """One callback to send: its path (token), message id and transcript id (and its job's id,
    when it has one)."""

    path: str
    msg_id: str
    transcript_id: str
    job_id: str | None = None


def write_requests_file(path: Path, template: Template, signer: Signer, items: Sequence[Item]) -> None:
    """The file `ingest.lua` reads: body halves, then one pre-signed callback per line."""
    ts = int(time.time())
    rest = template.middle + b"0" + template.suffix
    with path.open("wb") as f:
        f.write(template.prefix + b"\n" + rest + b"\n")
        for it in items:
            sig = signer.headers(it.msg_id, template.body(it.transcript_id), ts)["webhook-signature"]
            f.write(f"{it.path}\t{it.msg_id}\t{ts}\t{sig}\t{it.transcript_id}\n".encode())


def run_wrk(
    wrk: str,
    url: str,
    requests_file: Path,
    *,
    connections: int,
    duration: float,
    pinning: Pinning,
    threads: int = 1,
) -> dict[str, Any]:
    argv = [
        *pinning.prefix("load"),
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
        "--",
        str(requests_file),
        str(threads),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line.removeprefix("BENCH_JSON "))
            seconds = raw["duration_us"] / 1e6
            errors = sum(v for k, v in raw.items() if k.startswith("errors_"))
            return {
                "tool": "wrk",
                "connections": connections,
                "duration_s": round(seconds, 2),
                "requests": raw["requests"],
                "rps": round(raw["requests"] / seconds, 1),
                "p50_ms": raw["p50_us"] / 1000,
                "p90_ms": raw["p90_us"] / 1000,
                "p99_ms": raw["p99_us"] / 1000,
                "p999_ms": raw["p999_us"] / 1000,
                "max_ms": raw["max_us"] / 1000,
                "errors": errors,
                "error_detail": {k.removeprefix("errors_"): v for k, v in raw.items() if k.startswith("errors_") and v},
                "generated": raw["generated"],
                "items": raw["items"],
                "reused_items": raw["generated"] > raw["items"],
            }
    raise RuntimeError(f"wrk gave no summary (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")


async def closed_loop(
    url: str,
    template: Template,
    signer: Signer,
    items: Sequence[Item],
    *,
    connections: int,
    duration: float,
    reuse: bool,
) -> dict[str, Any]:
    """The Python stand-in for wrk: same requests, `connections` in flight, for `duration` seconds."""
    ts = int(time.time())
    prepared = [(it.path, template.body(it.transcript_id)) for it in items]
    headers = [signer.headers(it.msg_id, body, ts) for it, (_, body) in zip(items, prepared, strict=True)]
    latencies: list[float] = []
    errors = 0
    nxt = 0
    generated = 0
    deadline = 0.0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal nxt, errors, generated
        while time.perf_counter() < deadline:
            if nxt >= len(prepared):
                if not reuse:
                    return
                nxt = 0
            i = nxt
            nxt += 1
            generated += 1
            path, body = prepared[i]
            started = time.perf_counter()
            try:
                async with session.post(url + path, data=body, headers=headers[i]) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        deadline = started + duration
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    lat = summarize([x * 1000 for x in latencies])
    return {
        "tool": "python (aiohttp closed loop)",
        "connections": connections,
        "duration_s": round(elapsed, 2),
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": lat["p50"],
        "p90_ms": lat["p90"],
        "p99_ms": lat["p99"],
        "p999_ms": lat["p999"],
        "max_ms": lat["max"],
        "errors": errors,
        "error_detail": {"status_or_transport": errors} if errors else {},
        "generated": generated,
        "items": len(items),
        "reused_items": generated > len(items),
    }


async def open_loop(
    session: aiohttp.ClientSession,
    url: str,
    template: Template,
    signer: Signer,
    items: Sequence[Item],
    *,
    rate: float,
) -> dict[str, Any]:
    """Send `items` at `rate` per second, each body stamped with its send time; wait for every answer.
    `acked_at` holds, by job id, the wall-clock time each item's 200 was read."""
    loop = asyncio.get_running_loop()
    acks: list[float] = []
    acked_at: dict[str, float] = {}
    statuses: dict[int | str, int] = {}
    late: list[float] = []
    tasks: set[asyncio.Task[None]] = set()

    async def send(it: Item) -> None:
        sent = time.time()
        body = template.body(it.transcript_id, sent)
        t0 = time.perf_counter()
        try:
            async with session.post(url + it.path, data=body, headers=signer.headers(it.msg_id, body, int(sent))) as r:
                await r.read()
                statuses[r.status] = statuses.get(r.status, 0) + 1
        except aiohttp.ClientError as exc:
            statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
            return
        acks.append((time.perf_counter() - t0) * 1000)
        if it.job_id is not None and r.status == 200:
            acked_at[it.job_id] = time.time()

    start = loop.time() + 0.02
    for i, it in enumerate(items):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late.append(-delay * 1000)
        task = asyncio.create_task(send(it))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    sending = loop.time() - start
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    return {
        "target_rate": rate,
        "sent": len(items),
        "achieved_rate": round(len(items) / sending, 1) if sending > 0 else None,
        "statuses": {str(k): v for k, v in statuses.items()},
        "ok": statuses.get(200, 0),
        "ack_ms": summarize(acks),
        "generator_late_ms_p99": summarize(late)["p99"] if late else 0.0,
        "acked_at": acked_at,
    }


async def burst(
    session: aiohttp.ClientSession,
    url: str,
    template: Template,
    signer: Signer,
    items: Sequence[Item],
    *,
    concurrency: int,
) -> dict[str, Any]:
    """Send every item as fast as `concurrency` connections allow (setup for the fan-out backlog)."""
    queue = list(reversed(items))
    statuses: dict[int | str, int] = {}

    async def worker() -> None:
        while queue:
            it = queue.pop()
            body = template.body(it.transcript_id, time.time())
            try:
                async with session.post(url + it.path, data=body, headers=signer.headers(it.msg_id, body)) as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
            except aiohttp.ClientError as exc:
                statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "sent": len(items),
        "ok": statuses.get(200, 0),
        "statuses": {str(k): v for k, v in statuses.items()},
        "seconds": round(time.perf_counter() - started, 2),
    }
