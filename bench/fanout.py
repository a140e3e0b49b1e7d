"""Scenario 3, fan-out: deliveries/s against a bare HTTP client posting the same signed bodies.

Both shapes drain a backlog of stored events, as after a burst or an outage:

* wide: events to 100 subscribers each (50 events → 5,000 deliveries in the full run);
* deep: 5,000 events to one subscriber.

The events are written before Callboard starts, as its processor writes them (`build_finish` and
`Store.finish_job`: transcript, event and one pending delivery per subscription); then `callboard
serve` starts and its delivery worker drains them. The rate is taken at the sink, the same way
for Callboard and the ceilings: (n − 1) / (last − first receive).

The ceilings are `bench/bare_client.py` on the server core, posting the same event body, signed
per request as Callboard signs it, at the worker's concurrency: its global in-flight limit (256)
for wide, its per-subscription limit (8) for deep. After the wide drain, single events are sent
one at a time and the time from the callback's 200 to its 100th delivery is recorded too.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from typing import Any

import aiohttp

from bench.context import Context, opened_store, per_item_us, url_of
from bench.dbs import create_events, create_subscriptions
from bench.load import Item
from bench.machine import ROOT
from bench.payloads import event_payload
from bench.sink import Sink
from bench.stats import median, span_rate, summarize
from routes.worker import WorkerConfig

_CONFIG = WorkerConfig.__dataclass_fields__
PER_SUBSCRIPTION: int = _CONFIG["per_subscription"].default  # type: ignore[assignment]
MAX_IN_FLIGHT: int = _CONFIG["max_in_flight"].default  # type: ignore[assignment]


def shape(ctx: Context, mode: str) -> tuple[int, int, int]:
    """(subscribers, events, the ceiling's concurrency) of a mode."""
    d = ctx.durations
    if mode == "wide":
        return d.wide_subscribers, d.wide_events, MAX_IN_FLIGHT
    return 1, d.deep_events, PER_SUBSCRIPTION


async def ceiling(ctx: Context, kind: str, mode: str) -> dict[str, Any]:
    subscribers, events, concurrency = shape(ctx, mode)
    sink = await Sink().start()
    try:
        keys = [base64.b64encode(bytes([i % 256]) * 32).decode() for i in range(subscribers)]
        spec = {
            "kind": kind,
            "urls": [sink.subscriber_url(i) for i in range(subscribers)],
            "keys": keys,
            "payload": base64.b64encode(event_payload()).decode(),
            "events": events,
            "concurrency": concurrency,
        }
        spec_path = ctx.workdir / f"bare-{kind}-{mode}.json"
        spec_path.write_text(json.dumps(spec))
        argv = [*ctx.pinning.prefix("server"), sys.executable, "-m", "bench.bare_client", str(spec_path)]
        client = json.loads(await _run(argv))
    finally:
        await sink.close()
    times = [t for t, m in zip(sink.rec.received, sink.rec.msg_ids, strict=True) if m.startswith(b"evt_bare_run")]
    result = {
        "client": kind,
        "subscribers": subscribers,
        "events": events,
        "deliveries": len(times),
        "concurrency": concurrency,
        "deliveries_per_s": round(span_rate(times) or 0.0, 1),
        "client_elapsed_s": round(client["client_elapsed_s"], 3),
        "client_cpu_us_per_delivery": round(client["client_cpu_s"] / max(1, len(times)) * 1e6, 1),
        "statuses": client["statuses"],
        "client_peak_rss_mib": client.get("peak_rss_mib"),
    }
    ctx.log(f"fan-out ceiling {kind} {mode}: {result['deliveries_per_s']:.0f} deliveries/s")
    return result


async def _run(argv: list[str]) -> str:
    proc = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{err.decode(errors='replace')}")
    return out.decode()


async def run(ctx: Context, backend: str, mode: str) -> dict[str, Any]:
    d = ctx.durations
    subscribers, events, _ = shape(ctx, mode)
    rounds = d.wide_rounds if mode == "wide" else 0
    sink = await Sink(verify=True).start()
    try:
        async with ctx.database(backend, mode) as db_url:
            async with opened_store(db_url) as store:
                subs = await create_subscriptions(store, [sink.subscriber_url(i) for i in range(subscribers)])
                sink.register_all({i: key for i, (_, key) in enumerate(subs)})
                ctx.log(f"fan-out {backend} {mode}: storing {events} events for {subscribers} subscriber(s)")
                jobs = await ctx.jobs(store, events, mode)
                body = ctx.template.body("transcript_x", 0.0)
                await create_events(store, jobs, [sub_id for sub_id, _ in subs], body)
                singles = await ctx.items(store, rounds, mode) if rounds else []
            expected = events * subscribers
            started = time.time()
            with ctx.serve(f"{mode}", db_url) as server:
                cpu_before, db_before = server.cpu_seconds(), ctx.database_cpu(backend)
                done = await sink.wait_for(expected, max(60.0, d.drain * 4))
                cpu_after, db_after = server.cpu_seconds(), ctx.database_cpu(backend)
                peak_rss = server.peak_rss_mib()
                drained = time.time()
                received = list(sink.rec.received)
                bad, verified = sink.bad_signatures, sink.verified
                one_event = await _single_events(ctx, sink, url_of(server), singles, subscribers) if done else []
    finally:
        await sink.close()
    result: dict[str, Any] = {
        "subscribers": subscribers,
        "events": events,
        "deliveries": len(received),
        "all_delivered": done,
        "deliveries_per_s": round(span_rate(received) or 0.0, 1),
        "start_to_last_delivery_s": round(max(received, default=drained) - started, 2),
        "bad_signatures": bad,
        "verified_signatures": verified,
        "server_peak_rss_mib": peak_rss,
    }
    # from the server being up to the last delivery: the worker's CPU per delivery
    if (cpu := per_item_us(cpu_before, cpu_after, len(received))) is not None:
        result["server_cpu_us_per_delivery"] = cpu
    if (db := per_item_us(db_before, db_after, len(received))) is not None:
        result["postgres_cpu_us_per_delivery"] = db
    if rounds:
        result["one_event_callback_to_last_delivery_ms"] = summarize(one_event)
    ctx.log(
        f"  {backend} {mode}: {result['deliveries_per_s']:.0f} deliveries/s ({len(received)}/{expected})"
        + (f"; one event → {subscribers}: median {median(one_event) or 0:.1f} ms" if one_event else "")
    )
    if not done:
        raise RuntimeError(f"{len(received)}/{expected} deliveries arrived")
    return result


async def _single_events(ctx: Context, sink: Sink, url: str, items: list[Item], subscribers: int) -> list[float]:
    """One callback at a time: ms from its 200 to the last of its deliveries."""
    out = []
    async with aiohttp.ClientSession() as session:
        for it in items:
            sink.reset()
            body = ctx.template.body(it.transcript_id, time.time())
            async with session.post(url + it.path, data=body, headers=ctx.signer.headers(it.msg_id, body)) as resp:
                await resp.read()
                acked = time.time()
                if resp.status != 200:
                    raise RuntimeError(f"a single-event callback was answered {resp.status}")
            if not await sink.wait_for(subscribers, ctx.durations.drain):
                raise RuntimeError(f"{sink.count}/{subscribers} deliveries of one event arrived")
            out.append((max(sink.rec.received) - acked) * 1000)
            await asyncio.sleep(0.02)
    return out
