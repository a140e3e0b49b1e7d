"""A PostgreSQL restart during operation is survived, on a server the test starts itself.

The test runs its own PostgreSQL (`initdb` into a temporary directory, its own port, binaries
under /usr/lib/postgresql/*/bin): the shared server is never stopped. While the database is down
callbacks fail fast with 503 (providers retry) and `/readyz` says so; when it is back everything
resumes without restarting Callboard, and every acknowledged callback ends as one delivered event.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from routes.signing import new_secret
from tests.fakes.base import running
from tests.fakes.generic import GenericFake
from tests.harness import CallboardProcess, wait_until
from tests.servers import free_port
from tests.subscribers import running_subscriber


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise AssertionError(f"PostgreSQL server binaries ({name}) not found under /usr/lib/postgresql/*/bin")
    return found[-1]


class OwnPostgres:
    """A throwaway PostgreSQL server: initdb in a temp dir, listening on 127.0.0.1:<port>."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="callboard-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:  # the server refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as_postgres, *argv], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


def test_postgres_restart_is_survived_without_restarting_callboard(tmp_path: Path) -> None:
    with own_postgres() as pg, running(GenericFake(webhook_secret=new_secret())) as fake, running_subscriber() as sub:
        with CallboardProcess(tmp_path, database_url=pg.url, fakes={"generic": fake}) as cb:
            cb.cli_json("subscriptions", "add", sub.url)
            jobs = [
                cb.http.post("/v1/jobs", json={"provider": "generic", "audio_url": "https://example.com/a.wav"}).json()
                for _ in range(6)
            ]
            before, during = jobs[:3], jobs[3:]
            for job in before:
                assert fake.callback(job["provider_job_id"])[0].status_code == 200
            sub.wait_for(3)

            pg.stop()
            for job in during:
                started = time.monotonic()
                [response] = fake.callback(job["provider_job_id"])
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "database_unavailable"
                assert time.monotonic() - started < 10, "fails fast instead of hanging"
            ready = httpx.get(f"{cb.url}/readyz", timeout=10)
            assert ready.status_code == 503
            assert ready.json()["status"] == "unavailable"

            pg.start()
            wait_until(lambda: httpx.get(f"{cb.url}/readyz", timeout=10).status_code == 200, timeout=30,
                       what="readyz after the restart")  # fmt: skip
            for job in during:  # the provider retries what got a 503
                wait_until(lambda job=job: fake.callback(job["provider_job_id"])[0].status_code == 200, timeout=30,
                           interval=0.5, what="the callback to be accepted again")  # fmt: skip
            received = sub.wait_for(6, timeout=30)
            assert sorted({r.json()["data"]["job_id"] for r in received}) == sorted(j["id"] for j in jobs)
            for job in jobs:
                assert cb.job(job["id"])["status"] == "completed"
            assert len(cb.events()) == 6
            assert cb.proc is not None and cb.proc.poll() is None, "the same Callboard process all along"
