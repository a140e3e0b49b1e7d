"""Shared e2e helpers: reading a Callboard SQLite file directly, as an operator would, and CLI checks."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from storage.sqlite import path_of
from tests.harness import CallboardProcess


def db_path(cb: CallboardProcess) -> Path:
    return Path(path_of(cb.env["CALLBOARD_DATABASE_URL"]))


def query(cb: CallboardProcess, sql: str, *args: Any) -> list[sqlite3.Row]:
    """Run one read-only query against the process's database file."""
    conn = sqlite3.connect(f"file:{db_path(cb)}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, args))
    finally:
        conn.close()


def count(cb: CallboardProcess, table: str) -> int:
    return int(query(cb, f"SELECT COUNT(*) FROM {table}")[0][0])


def assert_one_line_error(stderr: str) -> None:
    """The CLI's contract for failures: one readable line on stderr, never a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("callboard: "), stderr
