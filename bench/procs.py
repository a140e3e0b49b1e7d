"""Processes under test: `callboard serve` / `callboard worker` and the no-op Starlette server.

Each runs pinned to the server core, logs to a file in the run's work directory, and is stopped
with SIGTERM (then SIGKILL if it lingers). Callboard gets the environment the tests give it
(`tests/harness.py`): database URL, public URL, secret key, private targets allowed, and the
generic provider's webhook secret; its working directory is the run's, so no `.env` leaks in.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from bench.machine import ROOT, Pinning

BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def callboard_env(database_url: str, port: int, *, secret_key: str, webhook_secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBOARD_")}
    env.update(
        {
            "CALLBOARD_DATABASE_URL": database_url,
            "CALLBOARD_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "CALLBOARD_SECRET_KEY": secret_key,
            "CALLBOARD_ALLOW_PRIVATE_TARGETS": "true",
            "CALLBOARD_GENERIC_WEBHOOK_SECRET": webhook_secret,
            # never called: the callbacks carry the whole transcript
            "CALLBOARD_GENERIC_BASE_URL": "http://127.0.0.1:9",
            "CALLBOARD_LOG_FORMAT": "json",
        }
    )
    return env


class Process:
    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str],
        workdir: Path,
        health_url: str | None,
        pinning: Pinning,
        profile: Path | None = None,
    ) -> None:
        self.name = name
        self.profile = profile
        self.profiler: subprocess.Popen[bytes] | None = None
        self.argv = [*pinning.prefix("server"), *argv]
        self.env = dict(env)
        self.workdir = workdir
        self.health_url = health_url
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if self.health_url is None:
            self._start_profiler()
            return self
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.health_url, timeout=1) as resp:
                    if resp.status == 200:
                        self._start_profiler()
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not become healthy:\n{self.tail()}")

    def _start_profiler(self) -> None:
        """`--profile`: py-spy samples the process from now until it exits (without pausing it),
        then writes collapsed stacks, one line per stack with its sample count."""
        if self.profile is None or self.proc is None:
            return
        output = self.profile / f"{self.name}.txt"
        argv = [py_spy(), "record", "--pid", str(self.proc.pid), "--rate", "250", "--nonblocking"]
        argv += ["--format", "raw", "--output", str(output)]
        with open(self.profile / f"{self.name}.py-spy.log", "ab") as log:
            self.profiler = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, timeout: float = 30.0) -> int | None:
        try:
            if self.proc is None or self.proc.poll() is not None:
                return None if self.proc is None else self.proc.returncode
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()
        finally:
            if self.profiler is not None:  # it writes its file once the process is gone
                try:
                    self.profiler.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.profiler.kill()

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the process so far (all its threads); None when unknown."""
        times = self.cpu_times()
        return None if times is None else times[0] + times[1]

    def cpu_times(self) -> tuple[float, float] | None:
        """(user, system) CPU time of the process so far (all its threads); None when unknown.
        System time is the kernel working for it: sockets, and on SQLite the WAL's writes and fsyncs."""
        fields = None if self.proc is None else stat_fields(self.proc.pid)
        if fields is None:
            return None
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def peak_rss_mib(self) -> float | None:
        """The most memory the process has held resident so far; None when unknown."""
        return None if self.proc is None else peak_rss_mib(self.proc.pid)

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> Process:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 on: state, parent, …;
    utime and stime at 11 and 12, cutime and cstime at 13 and 14); None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def peak_rss_mib(pid: int) -> float | None:
    """A live process's peak resident memory (`VmHWM` in /proc/<pid>/status), in MiB; None when
    it is gone or the kernel does not say."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)  # kB
    return None


def py_spy() -> str:
    """The py-spy executable (`--profile`); FileNotFoundError when it is not installed."""
    found = shutil.which("py-spy") or (str(BIN / "py-spy") if (BIN / "py-spy").exists() else None)
    if found is None:
        raise FileNotFoundError("--profile needs py-spy: .venv/bin/pip install py-spy")
    return found


def callboard_serve(
    name: str,
    env: Mapping[str, str],
    port: int,
    workdir: Path,
    pinning: Pinning,
    *,
    no_worker: bool = False,
    profile: Path | None = None,
) -> Process:
    argv = [str(BIN / "callboard"), "serve", "--port", str(port), *(["--no-worker"] if no_worker else [])]
    health = f"http://127.0.0.1:{port}/healthz"
    return Process(name, argv, env=env, workdir=workdir, health_url=health, pinning=pinning, profile=profile)


def callboard_worker(name: str, env: Mapping[str, str], workdir: Path, pinning: Pinning) -> Process:
    return Process(name, [str(BIN / "callboard"), "worker"], env=env, workdir=workdir, health_url=None, pinning=pinning)


def noop_server(port: int, workdir: Path, pinning: Pinning) -> Process:
    """The ceiling: a no-op Starlette POST handler, served as `callboard serve` is (uvicorn, one worker)."""
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.noop_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
        "--no-server-header",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return Process(
        "noop", argv, env=env, workdir=workdir, health_url=f"http://127.0.0.1:{port}/healthz", pinning=pinning
    )
