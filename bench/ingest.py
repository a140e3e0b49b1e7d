"""Scenario 1, ingest: signed generic callbacks in, durable before the 200, against a no-op handler.

The ceiling is `bench/noop_app.py` (Starlette, uvicorn, one worker) on the server core. Callboard
is `callboard serve --no-worker`, the receiving tier of a scale-out deployment: the HTTP handler,
verification and the group-committed inbox write, nothing else competing for its core. For the
record, the same load is also measured against a `callboard serve` that runs its processor and
delivery worker beside the handler (they then process what arrives, on the same core).

Both are driven by wrk on the load core with the same script, the same number of connections
and the same request shapes; every Callboard request is a different callback for a different
job. A run that used up the pre-made callbacks (wrk then repeats them: duplicates) is flagged.
"""

from __future__ import annotations

import math
from typing import Any

from bench import procs
from bench.context import Context, fake_items, opened_store, per_item_us, url_of
from bench.load import Item, closed_loop, run_wrk, write_requests_file

NOOP_ITEMS = 20_000


async def _drive(
    ctx: Context,
    url: str,
    items: list[Item],
    duration: float,
    *,
    reuse: bool,
    server: procs.Process | None = None,
    backend: str = "",
) -> dict[str, Any]:
    before, db_before = server.cpu_times() if server else None, ctx.database_cpu(backend)
    result = await _load(ctx, url, items, duration, reuse=reuse)
    after, db_after = server.cpu_times() if server else None, ctx.database_cpu(backend)
    if before is not None and after is not None and result["requests"]:
        # the server's CPU time over the run (all its threads), per answered request
        user, system = after[0] - before[0], after[1] - before[1]
        result["server_cpu_us_per_request"] = round((user + system) / result["requests"] * 1e6, 1)
        result["server_sys_us_per_request"] = round(system / result["requests"] * 1e6, 1)
        result["server_cpu_percent"] = round((user + system) / result["duration_s"] * 100, 1)
    if (db := per_item_us(db_before, db_after, result["requests"])) is not None:
        result["postgres_cpu_us_per_request"] = db  # the database server's, over the same window
    if server is not None:
        result["server_peak_rss_mib"] = server.peak_rss_mib()
    return result


async def _load(ctx: Context, url: str, items: list[Item], duration: float, *, reuse: bool) -> dict[str, Any]:
    if ctx.wrk:
        path = ctx.workdir / f"requests-{ctx.label('wrk')}.txt"
        write_requests_file(path, ctx.template, ctx.signer, items)
        try:
            return run_wrk(ctx.wrk, url, path, connections=ctx.connections, duration=duration, pinning=ctx.pinning)
        finally:
            path.unlink(missing_ok=True)
    return await closed_loop(
        url, ctx.template, ctx.signer, items, connections=ctx.connections, duration=duration, reuse=reuse
    )


async def ceiling(ctx: Context) -> dict[str, Any]:
    d = ctx.durations
    port = procs.free_port()
    ctx.log("ingest ceiling: no-op Starlette handler")
    items = list(fake_items(ctx, NOOP_ITEMS))
    with procs.noop_server(port, ctx.workdir, ctx.pinning) as server:
        url = f"http://127.0.0.1:{port}"
        await _drive(ctx, url, items, d.ingest_warmup, reuse=True)
        result = await _drive(ctx, url, items, d.ingest, reuse=True, server=server)
    result["reused_items"] = False  # irrelevant for a handler that stores nothing
    ctx.log(f"  no-op: {result['rps']:.0f} req/s, p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms")
    return result


def jobs_needed(ctx: Context, ceiling_rps: float | None, seconds: float) -> int:
    # Callboard cannot outrun the no-op handler; 25 % headroom on top of that
    rate = min(ceiling_rps or 30_000, 30_000)
    return max(1000, math.ceil(rate * seconds * 1.25))


async def callboard(ctx: Context, backend: str, ceiling_rps: float | None, *, workers: bool) -> dict[str, Any]:
    d = ctx.durations
    what = "with workers" if workers else "--no-worker"
    ctx.log(f"ingest {backend} ({what}): preparing jobs")
    async with ctx.database(backend, "ingest") as db_url:
        async with opened_store(db_url) as store:
            warm = await ctx.items(store, jobs_needed(ctx, ceiling_rps, d.ingest_warmup), "warm")
            items = await ctx.items(store, jobs_needed(ctx, ceiling_rps, d.ingest), "ingest")
        with ctx.serve("ingest", db_url, no_worker=not workers) as server:
            url = url_of(server)
            await _drive(ctx, url, warm, d.ingest_warmup, reuse=False)
            result = await _drive(ctx, url, items, d.ingest, reuse=False, server=server, backend=backend)
        async with opened_store(db_url) as store:
            stored = await store.count_callbacks()
    result["stored_callbacks"] = stored
    result["server"] = "callboard serve" + ("" if workers else " --no-worker")
    # every answered request must be a stored callback (warm-up ones included)
    result["durable_check"] = stored >= result["requests"]
    ctx.log(
        f"  {backend} ({what}): {result['rps']:.0f} req/s, p50 {result['p50_ms']:.2f} ms, "
        f"p99 {result['p99_ms']:.2f} ms, errors {result['errors']}, stored {stored}"
    )
    return result
