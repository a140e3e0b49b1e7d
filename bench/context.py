"""What every scenario of a run shares: settings, durations, the pinning, secrets, logging."""

from __future__ import annotations

import contextlib
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import dbcpu, dbs, procs
from bench.load import Item
from bench.machine import Pinning
from bench.payloads import Signer, Template, callback_paths, template
from routes.signing import new_secret
from storage.store import Store


@dataclass(frozen=True)
class Durations:
    """How long each part runs. `quick()` is for the smoke test: seconds, not minutes."""

    ingest: float = 10.0
    ingest_warmup: float = 2.0
    e2e: float = 10.0
    e2e_rate: float = 500.0
    ramp_step: float = 5.0
    ramp_rates: tuple[float, ...] = (1000, 1500, 2000, 3000, 4000, 6000, 8000)
    ramp_refine: bool = True
    drain: float = 15.0
    wide_subscribers: int = 100
    wide_events: int = 50
    wide_rounds: int = 10
    deep_events: int = 5000
    ingest_with_workers: bool = True
    #: ingest and each fan-out case are measured this many times, ceiling then Callboard in turn,
    #: and end to end's fixed rate as many windows; the median one is reported (single runs moved
    #: by ±30 % on this machine)
    repeats: int = 3

    @classmethod
    def quick(cls) -> Durations:
        return cls(
            ingest=2.0,
            ingest_warmup=0.5,
            e2e=2.0,
            ramp_step=1.0,
            ramp_rates=(1000,),
            ramp_refine=False,
            drain=8.0,
            wide_events=20,
            wide_rounds=2,
            deep_events=2000,
            ingest_with_workers=False,
            repeats=1,
        )


@dataclass
class Context:
    workdir: Path
    pinning: Pinning
    durations: Durations
    wrk: str | None
    postgres_url: str
    #: ingest's levels of wrk connections, in the order measured
    connections: tuple[int, ...]
    quiet: bool = False
    #: `--profile`: where py-spy writes each Callboard server's profile (None: not profiled)
    profile_dir: Path | None = None
    secret_key: str = field(default_factory=lambda: "bench-" + secrets.token_urlsafe(24))
    webhook_secret: str = field(default_factory=new_secret)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    started: float = field(default_factory=time.monotonic)
    #: the PostgreSQL server's CPU (`bench/dbcpu.py`); None when not measured or not visible here
    postgres_cpu: dbcpu.ServerCpu | None = None
    #: what went wrong beside a scenario without failing it (a database analyzer that stopped):
    #: reported with the run's errors
    problems: list[str] = field(default_factory=list)
    _serial: int = 0

    def __post_init__(self) -> None:
        self.template: Template = template()
        self.signer = Signer(self.webhook_secret)

    def log(self, message: str) -> None:
        if not self.quiet:
            print(f"[bench {time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)

    def label(self, what: str) -> str:
        self._serial += 1
        return f"{what}{self._serial}"

    def database_cpu(self, backend: str) -> float | None:
        """CPU seconds the database server has used so far (PostgreSQL's; None on SQLite, whose
        work is in Callboard's own process and CPU)."""
        return self.postgres_cpu.seconds() if backend == "postgres" and self.postgres_cpu else None

    # -- Callboard on a fresh database --------------------------------------------------------

    def database(self, backend: str, what: str) -> contextlib.AbstractAsyncContextManager[str]:
        return dbs.fresh_database(
            backend, self.workdir, self.postgres_url, f"{what}_{self.run_id}", on_analyzer_error=self.problem
        )

    def problem(self, message: str) -> None:
        self.log(message)
        self.problems.append(message)

    def env(self, database_url: str, port: int) -> dict[str, str]:
        return procs.callboard_env(database_url, port, secret_key=self.secret_key, webhook_secret=self.webhook_secret)

    def serve(self, name: str, database_url: str, *, no_worker: bool = False) -> procs.Process:
        port = procs.free_port()
        return procs.callboard_serve(
            self.label(name),
            self.env(database_url, port),
            port,
            self.workdir,
            self.pinning,
            no_worker=no_worker,
            profile=self.profile_dir,
        )

    def worker(self, name: str, database_url: str) -> procs.Process:
        return procs.callboard_worker(
            self.label(name), self.env(database_url, procs.free_port()), self.workdir, self.pinning
        )

    async def jobs(self, store: Store, n: int, tag: str) -> list[tuple[str, str]]:
        """`n` jobs in the store: (job id, transcript id) pairs."""
        run = f"{tag}{self.run_id}{self._serial}"
        self._serial += 1
        return await dbs.create_jobs(store, n, run=run, metadata={"bench": tag})

    async def items(self, store: Store, n: int, tag: str) -> list[Item]:
        """`n` jobs in the store and a signed-callback item for each (its own job, message id, transcript)."""
        run = f"{tag}{self.run_id}{self._serial}"
        self._serial += 1
        jobs = await dbs.create_jobs(store, n, run=run, metadata={"bench": tag})
        paths = callback_paths(self.secret_key, [job_id for job_id, _ in jobs])
        return [Item(path, f"msg_{tid}", tid, job_id) for path, (job_id, tid) in zip(paths, jobs, strict=True)]


def per_item_us(before: float | None, after: float | None, n: int) -> float | None:
    """CPU seconds between two readings, in µs per item; None when either reading is missing."""
    if before is None or after is None or not n:
        return None
    return round((after - before) / n * 1e6, 1)


@contextlib.asynccontextmanager
async def opened_store(url: str) -> AsyncIterator[Store]:
    async with dbs.store_for(url) as store:
        yield store


def url_of(process: procs.Process) -> str:
    assert process.health_url is not None
    return process.health_url.removesuffix("/healthz")


def fake_items(ctx: Context, n: int) -> Sequence[Item]:
    """Items for the no-op ceiling: well-formed tokens for jobs that exist nowhere."""
    ids = [f"job_{uuid.uuid4().hex[:26]}" for _ in range(n)]
    paths = callback_paths(ctx.secret_key, ids)
    return [Item(p, f"msg_noop_{i}", f"transcript_noop_{i:07d}") for i, p in enumerate(paths)]
