"""`python -m bench.inprocess`: the ingest handler's CPU per callback, in-process, and A/B against
another commit at the same moment.

The full benchmark's figures moved by ±30 % between runs of unchanged code on this shared
machine, far more than most single changes to the hot path are worth. This measures one thing
steadily: the Starlette application of `callboard serve --no-worker` driven straight through
ASGI (no sockets, no load generator) by `--concurrency` clients, each callback a distinct signed
`generic` callback for its own job, stored durably in a real database (a SQLite file, or a fresh
PostgreSQL database), reporting the process's CPU time (all threads, user and system) per
callback. It is the handler, verification, the group-committed inbox write and the log line.

With `--against REV` it checks REV out into a temporary git worktree and runs both at the same
time, one on each core, then swapped, `--rounds` times: whatever else the machine does then
slows both alike, so compare the pairs, not runs minutes apart. Each tree is measured by its own
copy of this module, so REV must have it too (commits from the one that added it on).

    python -m bench.inprocess                         # this tree, SQLite
    python -m bench.inprocess --against HEAD~1 --backend postgres
    python -m bench.inprocess --processor-batch 1     # then the processor alone, one callback a claim

`--processor-batch N` then runs the processor alone (`Processor.run_once`, N callbacks a claim)
over everything stored and reports its CPU per callback too: the end-to-end scenario's open loop
at 500/s has it claim one callback at a time, and on 2026-12-02 that cost 835-1,224 µs per
callback on SQLite against 400 µs with a batch of 64 (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from bench.machine import ROOT

ANSWERED = 200
Request = tuple[str, list[tuple[bytes, bytes]], bytes]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--callbacks", type=int, default=20_000, help="measured callbacks (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=32, help="clients at once (default: %(default)s)")
    p.add_argument("--against", metavar="REV", help="a commit to run at the same time, on the other core")
    p.add_argument("--rounds", type=int, default=2, help="with --against: pairs of runs (default: %(default)s)")
    p.add_argument(
        "--processor-batch",
        type=int,
        default=0,
        metavar="N",
        help="then also measure the processor alone, claiming N callbacks at a time, on what was stored",
    )
    p.add_argument(
        "--deliveries",
        type=int,
        default=0,
        metavar="N",
        help="measure the delivery worker instead: N deliveries drained to a local sink (bench/drain.py)",
    )
    p.add_argument("--shape", choices=("deep", "wide"), default="deep", help="with --deliveries (default: deep)")
    p.add_argument("--postgres-url", default=None, help="a server where databases may be created")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--core", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


class _Exchange:
    """One request through ASGI: the body in one message, the status kept."""

    def __init__(self, body: bytes) -> None:
        self.body: bytes | None = body
        self.status: list[int] = []

    async def receive(self) -> dict[str, Any]:
        if self.body is not None:
            body, self.body = self.body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status.append(message["status"])


async def _drive(app: Any, requests: Sequence[Request], concurrency: int) -> None:
    pending = iter(requests)

    async def client() -> None:
        for path, headers, body in pending:
            exchange = _Exchange(body)
            await app(_scope(path, headers), exchange.receive, exchange.send)
            if exchange.status != [ANSWERED]:
                raise RuntimeError(f"callback answered {exchange.status}, expected {ANSWERED}")

    await asyncio.gather(*(client() for _ in range(concurrency)))


@contextlib.asynccontextmanager
async def _database(backend: str, workdir: Path, postgres_url: str) -> AsyncIterator[str]:
    from bench import dbs

    async with dbs.fresh_database(backend, workdir, postgres_url, f"inprocess_{os.getpid()}") as url:
        yield url


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this process: CPU per callback of the application."""
    from bench import dbs
    from bench.payloads import Signer, callback_paths, template
    from receiver.app import create_app
    from receiver.gc_settings import tune_for_server
    from receiver.logconfig import configure_logging
    from receiver.settings import Settings
    from routes.signing import new_secret

    secret, key = new_secret(), "bench-inprocess-key"
    total = args.callbacks + args.callbacks // 4  # a quarter more to warm up with
    with tempfile.TemporaryDirectory(prefix="callboard-inprocess-") as tmp:
        workdir = Path(tmp)
        async with _database(args.backend, workdir, args.postgres_url or dbs.DEFAULT_POSTGRES_URL) as url:
            env = {
                "CALLBOARD_DATABASE_URL": url,
                "CALLBOARD_SECRET_KEY": key,
                "CALLBOARD_GENERIC_WEBHOOK_SECRET": secret,
                "CALLBOARD_LOG_FORMAT": "json",
            }
            settings = Settings.from_env(env, env_file=None)
            log_file = open(workdir / "server.log", "w")
            sys.stderr = log_file  # the log lines are written, to a file, as the server's are
            configure_logging("json")
            app = create_app(settings, run_workers=False)
            tune_for_server()  # as `callboard serve` does
            async with app.router.lifespan_context(app):
                async with dbs.store_for(url) as store:
                    jobs = await dbs.create_jobs(store, total, run="inprocess", metadata={"bench": "inprocess"})
                tpl, signer = template(), Signer(secret)
                requests: list[Request] = []
                for path, (_, transcript_id) in zip(callback_paths(key, [j for j, _ in jobs]), jobs, strict=True):
                    body = tpl.body(transcript_id, "0")
                    headers = {**signer.headers(f"msg_{transcript_id}", body), "host": "127.0.0.1:8000"}
                    headers["content-length"] = str(len(body))
                    requests.append((path, [(k.encode(), v.encode()) for k, v in headers.items()], body))
                warm, measured = requests[: total - args.callbacks], requests[total - args.callbacks :]
                await _drive(app, warm, args.concurrency)
                database = await DatabaseCpu.of(url)
                gc.collect()
                database.start()
                before, started = os.times(), time.perf_counter()
                await _drive(app, measured, args.concurrency)
                after, ended = os.times(), time.perf_counter()
                ingest_db = database.per(len(measured))
                processed = await _process_all(app, args.processor_batch, database) if args.processor_batch else None
            sys.stderr = sys.__stderr__
            log_file.close()
    n = len(measured)
    result: dict[str, Any] = {
        "callbacks": n,
        **cpu_per(before, after, n),
        **ingest_db,
        "wall_us": round((ended - started) / n * 1e6, 1),
    }
    if processed is not None:
        result["processor"] = processed
    return result


async def _process_all(app: Any, batch: int, database: DatabaseCpu) -> dict[str, Any]:
    """The processor alone on every callback stored (warm-up ones too): `run_once` with a batch of
    `batch` until nothing is left; its CPU per callback. A batch of 1 is what an open loop at a
    few hundred callbacks/s makes the processor of `callboard serve` do."""
    from receiver.processor import Processor

    processor = Processor(app.state.service, app.state.workers.fanout, batch=batch)
    gc.collect()
    database.start()
    n, before = 0, os.times()
    while taken := await processor.run_once():
        n += taken
    after = os.times()
    if not n:
        raise RuntimeError("the processor found nothing to process")
    return {"batch": batch, "callbacks": n, **cpu_per(before, after, n), **database.per(n)}


def cpu_per(before: os.times_result, after: os.times_result, n: int) -> dict[str, float]:
    """The process's CPU time (all threads, user and kernel) and its kernel part, µs per item."""
    user, kernel = after.user - before.user, after.system - before.system
    return {"cpu_us": round((user + kernel) / n * 1e6, 1), "sys_us": round(kernel / n * 1e6, 1)}


class DatabaseCpu:
    """The PostgreSQL server's CPU over a window (`bench/dbcpu.py`), µs per item as `db_us`; nothing
    on SQLite or when the server's processes are not visible. The whole server is counted, so with
    `--against` (two runs on one server at once) it is left out."""

    def __init__(self, meter: Any) -> None:
        self._meter = meter
        self._before: float | None = None

    @classmethod
    async def of(cls, url: str) -> DatabaseCpu:
        from bench import dbcpu

        return cls(await dbcpu.find(url) if url.startswith("postgres") else None)

    def start(self) -> None:
        self._before = None if self._meter is None else self._meter.seconds()

    def per(self, n: int) -> dict[str, float]:
        from bench.context import per_item_us

        after = None if self._meter is None else self._meter.seconds()
        db_us = per_item_us(self._before, after, n)
        return {} if db_us is None else {"db_us": db_us}


async def _drain(args: argparse.Namespace) -> dict[str, Any]:
    from bench import dbs, drain

    # the sink on another core than this child's (unpinned when the child is not pinned)
    others = [c for c in range(os.cpu_count() or 1) if c != args.core]
    sink_core = others[0] if args.core is not None and others else None
    url = args.postgres_url or dbs.DEFAULT_POSTGRES_URL
    return await drain.measure(args.backend, args.shape, args.deliveries, url, sink_core)


def _child_argv(args: argparse.Namespace, core: int) -> list[str]:
    argv = [sys.executable, "-m", "bench.inprocess", "--child", "--core", str(core), "--backend", args.backend]
    if args.deliveries:
        argv += ["--deliveries", str(args.deliveries), "--shape", args.shape]
    argv += ["--callbacks", str(args.callbacks), "--concurrency", str(args.concurrency)]
    if args.processor_batch:  # only when asked: an older tree's copy of this module lacks it
        argv += ["--processor-batch", str(args.processor_batch)]
    return argv + (["--postgres-url", args.postgres_url] if args.postgres_url else [])


def _spawn(args: argparse.Namespace, tree: Path, core: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # that tree's code first, before the installed one
    return subprocess.Popen(_child_argv(args, core), cwd=tree, env=env, stdout=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"a measurement failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _unit(args: argparse.Namespace) -> str:
    return f"delivery ({args.shape})" if args.deliveries else "callback"


def _database_part(r: dict[str, Any], alone: bool) -> str:
    return f" + {r['db_us']:.1f} PostgreSQL" if alone and "db_us" in r else ""


def _line(label: str, core: int, r: dict[str, Any], *, alone: bool = False) -> str:
    """A run's figures; the PostgreSQL server's CPU only for a run `alone` on the server."""
    unit = f"delivery ({r['shape']})" if "shape" in r else "callback"
    cpu = f"{r['cpu_us']:7.1f} µs CPU per {unit} (kernel {r['sys_us']:.1f}){_database_part(r, alone)}"
    line = f"{label:>10} core {core}: {cpu}, wall {r['wall_us']:.1f} µs"
    if (p := r.get("processor")) is not None:
        line += (
            f"; processor, batch {p['batch']}: {p['cpu_us']:.1f} µs CPU per callback (kernel {p['sys_us']:.1f})"
            + _database_part(p, alone)
        )
    return line


def compare(args: argparse.Namespace) -> int:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        print("--against needs two usable cores", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="callboard-against-") as tmp:
        other = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(other), args.against], check=True
        )
        try:
            if not (other / "bench" / "inprocess.py").exists():
                print(f"{args.against} has no bench/inprocess.py to measure itself with", file=sys.stderr)
                return 2
            pairs: list[tuple[float, float]] = []
            for _ in range(args.rounds):
                for here_core, there_core in ((cores[0], cores[1]), (cores[1], cores[0])):
                    here, there = _spawn(args, ROOT, here_core), _spawn(args, other, there_core)
                    a, b = _result(here), _result(there)
                    print(_line("this tree", here_core, a))
                    print(_line(args.against, there_core, b), flush=True)
                    pairs.append((a["cpu_us"], b["cpu_us"]))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=False)
    ratios = sorted(a / b for a, b in pairs)
    print(f"this tree / {args.against}, CPU per {_unit(args)}, pair by pair: " + ", ".join(f"{r:.2f}" for r in ratios))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        if args.core is not None:
            os.sched_setaffinity(0, {args.core})
        import uvloop

        print(json.dumps(uvloop.run(_drain(args) if args.deliveries else measure(args))))
        return 0
    if args.against:
        return compare(args)
    core = sorted(os.sched_getaffinity(0))[0]
    proc = subprocess.Popen(_child_argv(args, core), cwd=ROOT, stdout=subprocess.PIPE, text=True)
    print(_line("this tree", core, _result(proc), alone=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
