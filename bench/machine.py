"""The machine a run happens on: CPU pinning, tools (wrk), and what a result records about it.

Pinning: with two or more usable cores and `taskset`, servers under test run on one core
(`SERVER_CORE`) and the load (wrk, the Python generator and the sink, i.e. this process) on
another (`LOAD_CORE`). Without them everything shares the machine, and the result says so.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVER_CORE = 0
LOAD_CORE = 1

PACKAGES = (
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "aiohttp",
    "httpx",
    "aiosqlite",
    "asyncpg",
    "msgspec",
    "structlog",
    "itsdangerous",
)


def _usable_cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


class Pinning:
    """Where each side runs. `prefix(role)` is put in front of a command line."""

    def __init__(self, enabled: bool = True) -> None:
        cores = _usable_cores()
        self.taskset = shutil.which("taskset")
        self.enabled = bool(enabled and self.taskset and len(cores) >= 2)
        self.server_core = cores[0] if self.enabled else None
        self.load_core = cores[1] if self.enabled else None

    @classmethod
    def on(cls, core: int | None) -> Pinning:
        """Servers on `core` (not pinned when None): a process that is itself pinned to one core
        starting a server on another."""
        pinning = cls(enabled=False)
        pinning.enabled = bool(core is not None and pinning.taskset)
        pinning.server_core = core if pinning.enabled else None
        return pinning

    def prefix(self, role: str) -> list[str]:
        if not self.enabled:
            return []
        core = self.server_core if role == "server" else self.load_core
        return [str(self.taskset), "-c", str(core)]

    def pin_self_to_load(self) -> None:
        """This process generates load and runs the sink: it lives on the load core."""
        if self.enabled and self.load_core is not None:
            os.sched_setaffinity(0, {self.load_core})

    def describe(self) -> str:
        if not self.enabled:
            return "not pinned (taskset missing or fewer than 2 cores): servers and load share the machine"
        return (
            f"server under test on core {self.server_core}; load generator and sink on core {self.load_core};"
            " "
            "the PostgreSQL server (when used) is not pinned"
        )


def ensure_wrk(install: bool, log: Any) -> str | None:
    """The path of wrk, installing Debian's package when it is missing and we may; None if unavailable."""
    found = shutil.which("wrk")
    if found or not install:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        log("wrk is missing and cannot be installed here (needs root and apt-get): using the Python load generator")
        return None
    log("wrk is missing: installing Debian's package (apt-get install wrk)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in ("install", "update+install"):
        if attempt == "update+install":
            subprocess.run([apt, "update", "-q"], env=env, capture_output=True, timeout=300, check=False)
        done = subprocess.run(
            [apt, "install", "-y", "-q", "wrk"], env=env, capture_output=True, timeout=300, check=False
        )
        if done.returncode == 0 and shutil.which("wrk"):
            return shutil.which("wrk")
    log("could not install wrk: using the Python load generator")
    return None


def wrk_version(path: str | None) -> str | None:
    if path is None:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0] if first else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine shows here (and in the figures)."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def cpu_jiffies() -> tuple[int, int] | None:
    """(steal, total): clock ticks of all this machine's CPUs since boot, from /proc/stat. Steal is
    time the hypervisor gave this virtual machine's CPUs to someone else: every figure of a window
    with steal in it is slower than the code alone would make it. None where /proc/stat is not."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        values = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError):
        return None
    if len(values) < 8 or fields[0] != "cpu":  # an empty first line has no fields[0]
        return None
    return values[7], sum(values)


def steal_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of all CPUs' time taken by the host between two `cpu_jiffies` readings, in %."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round(100 * (after[0] - before[0]) / (after[1] - before[1]), 1)


class StealMeter:
    """The host's share of the CPUs (`steal_percent`), one window after another."""

    def __init__(self) -> None:
        self._mark = cpu_jiffies()

    def lap(self) -> float | None:
        """Steal since the last lap (or since this was made), in %; the next window starts now."""
        before, self._mark = self._mark, cpu_jiffies()
        return steal_percent(before, self._mark)


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
        return out.stdout.strip()

    # uncommitted changes to what runs (tests, docs and earlier results do not change the figures)
    runs = ("storage", "routes", "receiver", "bench", ":(exclude)bench/results", "pyproject.toml")
    status = git("status", "--porcelain", "--", *runs)
    return {
        "commit": git("rev-parse", "HEAD") or None,
        "subject": git("log", "-1", "--format=%s") or None,
        "dirty": bool(status),
    }


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for name in ("callboard", *PACKAGES):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine() -> dict[str, Any]:
    uname = platform.uname()
    return {
        "hostname": uname.node,
        "os": f"{uname.system} {uname.release}",
        "arch": uname.machine,
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(_usable_cores()),
        "memory_gib": _memory_gib(),
        "python_executable": sys.executable,
    }
