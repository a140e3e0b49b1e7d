"""The PostgreSQL server's own CPU time, read from `/proc` when the server runs on this machine.

Callboard's CPU per item counts its own process only. On SQLite that is all of it: the database
works inside the process. On PostgreSQL the server's backends do part of the work in processes
of their own, unpinned, on both cores, competing with Callboard and the load; so the report also
gives their CPU per item over the same window, which is what a deployment pays for the database.

The whole server is counted: the postmaster and every child of it (backends, the WAL writer, the
checkpointer, …), alive or exited since (the CPU of a child the postmaster has reaped is in its
`cutime`/`cstime`). Anything else the server does meanwhile (another client's queries, a test
suite on the same server) is counted too. A server elsewhere, or in another PID namespace, gives
None: nothing is reported rather than a wrong figure.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg

from bench.procs import stat_fields

_PROC = Path("/proc")
_SCANS = 5


class ServerCpu:
    """CPU seconds used so far by one PostgreSQL server (its postmaster and all its children)."""

    def __init__(self, postmaster: int) -> None:
        self.postmaster = postmaster
        self._tick = os.sysconf("SC_CLK_TCK")

    def seconds(self) -> float | None:
        """The total, from a scan during which the postmaster reaped no child that had used CPU.

        A child reaped mid-scan would be missed twice over: gone from /proc when the scan reaches
        it, and not yet in the `cutime` read before the scan. So the postmaster's own fields are
        read again after the scan, and the scan is repeated (a few times at most) when they moved.
        """
        ticks: int | None = None
        for _ in range(_SCANS):
            before = stat_fields(self.postmaster)
            children = self._children_ticks()
            after = stat_fields(self.postmaster)
            if before is None or after is None:
                return None
            ticks = sum(int(v) for v in after[11:15]) + children
            if after[13:15] == before[13:15]:  # no reaped child's CPU arrived during the scan
                break
        return None if ticks is None else ticks / self._tick

    def _children_ticks(self) -> int:
        ticks = 0
        for entry in _PROC.iterdir():
            if not entry.name.isdigit():
                continue
            fields = stat_fields(int(entry.name))
            if fields is not None and fields[1] == str(self.postmaster):  # its parent
                ticks += int(fields[11]) + int(fields[12])
        return ticks


async def find(url: str) -> ServerCpu | None:
    """The meter of the server at `url`, when its processes are visible here; else None."""
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        fields = stat_fields(int(backend))
        if fields is None or not (_PROC / str(backend) / "comm").read_text().startswith("postgres"):
            return None  # a pid of another machine or namespace
        return ServerCpu(int(fields[1]))
    except OSError:
        return None
    finally:
        await conn.close()
