"""`python -m bench.inprocess --deliveries N`: the delivery worker's CPU per delivery, in-process.

The fan-out scenario's figures move with the machine (the bare client's own CPU per delivery went
from 87 to 222 µs between rounds of one run on 2026-12-04), so a change to the delivery path
worth 5 % cannot be seen there. This drains a backlog of N signed deliveries with the real
`DeliveryWorker` (claims, signing, aiohttp, attempt records, group commits, log lines) in this
process, to a sink in a process of its own (`bench/noop_app.py`, served by uvicorn on the other
core), and reports this process's CPU time per delivery. With `--against REV` both trees drain at
the same moment, one per core, so whatever else the machine does slows both alike.

Shapes, as in the fan-out scenario: deep (every event to one subscriber, 8 requests in flight)
and wide (each event to 100 subscribers, 256 in flight). A first, smaller backlog is drained to
warm up; then the measured one, from the worker's start to the last delivery recorded.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

WIDE_SUBSCRIBERS = 100


async def _backlog(store: Any, sub_ids: list[str], events: int, tag: str) -> None:
    from bench import dbs
    from bench.payloads import template

    jobs = await dbs.create_jobs(store, events, run=tag, metadata={"bench": "drain"})
    await dbs.create_events(store, jobs, sub_ids, template().body("transcript_x", 0.0))


def _succeeded() -> float:
    """Successful attempts so far in this process, as its /metrics reports them."""
    from routes.metrics import REGISTRY

    return REGISTRY.get_sample_value("callboard_delivery_attempts_total", {"outcome": "succeeded"}) or 0.0


async def _drain(store: Any, expected: int) -> float:
    """Run a delivery worker until `expected` more attempts have succeeded; its wall time. Counted
    by the worker's own metric: polling the database would add its queries to what is measured."""
    from routes.fanout import Fanout
    from routes.retry import RetryPolicy, parse_schedule
    from routes.worker import DeliveryWorker, WorkerConfig

    config = WorkerConfig(policy=RetryPolicy(parse_schedule("0,1")), allow_private=True)
    worker = DeliveryWorker(store, Fanout(store), config)
    stop = asyncio.Event()
    target = _succeeded() + expected
    started = time.perf_counter()
    task = asyncio.create_task(worker.run(stop))
    try:
        while _succeeded() < target:
            if task.done():
                task.result()
                raise RuntimeError("the delivery worker stopped before the backlog was drained")
            await asyncio.sleep(0.05)  # a read of every metric: not too often
        ended = time.perf_counter()
    finally:
        stop.set()
        await task
    return ended - started


async def measure(
    backend: str, shape: str, deliveries: int, postgres_url: str, sink_core: int | None
) -> dict[str, Any]:
    """Drain a warm-up backlog, then `deliveries` more; this process's CPU per delivery of the second."""
    import tempfile

    from bench import dbs, procs
    from bench.inprocess import DatabaseCpu, cpu_per
    from bench.machine import Pinning
    from receiver.gc_settings import tune_for_server
    from receiver.logconfig import configure_logging

    subscribers = WIDE_SUBSCRIBERS if shape == "wide" else 1
    events = max(1, deliveries // subscribers)
    port = procs.free_port()
    with (
        tempfile.TemporaryDirectory(prefix="callboard-drain-") as tmp,
        procs.noop_server(port, Path(tmp), Pinning.on(sink_core)),  # the subscribers' endpoint
    ):
        base = f"http://127.0.0.1:{port}"
        log_file = open(Path(tmp) / "server.log", "w")
        sys.stderr = log_file  # the log lines are written, to a file, as the server's are
        configure_logging("json")
        tune_for_server()  # as `callboard serve` does at startup
        try:
            async with dbs.fresh_database(backend, Path(tmp), postgres_url, f"drain_{os.getpid()}") as url:
                async with dbs.store_for(url) as store:
                    urls = [f"{base}/callbacks/sink/{i}" for i in range(subscribers)]
                    sub_ids = [sub_id for sub_id, _ in await dbs.create_subscriptions(store, urls)]
                    warm = max(1, events // 4)
                    await _backlog(store, sub_ids, warm, "drain-warm")
                    await _drain(store, warm * subscribers)
                    await _backlog(store, sub_ids, events, "drain")
                    database = await DatabaseCpu.of(url)
                    gc.collect()
                    database.start()
                    before = os.times()
                    wall = await _drain(store, events * subscribers)
                    after = os.times()
                    drain_db = database.per(events * subscribers)
        finally:
            sys.stderr = sys.__stderr__
            log_file.close()
    n = events * subscribers
    return {
        "deliveries": n,
        "shape": shape,
        **cpu_per(before, after, n),
        **drain_db,
        "wall_us": round(wall / n * 1e6, 1),
    }
