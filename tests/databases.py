"""Fresh databases for tests: a SQLite file in tmp, or a new PostgreSQL database on the shared server.

Every storage-touching test runs against both backends. PostgreSQL is the server at
127.0.0.1:5432 (database `test`, user `postgres`, trust auth) unless CALLBOARD_TEST_POSTGRES_URL
says otherwise; each test gets its own database, dropped afterwards. When the server cannot be
reached the tests fail with a message saying so: they are never skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg

ADMIN_URL = os.environ.get("CALLBOARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgres")


class PostgresUnreachableError(RuntimeError):
    pass


async def _admin(sql: str) -> None:
    try:
        conn = await asyncpg.connect(ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise PostgresUnreachableError(
            f"the PostgreSQL server for tests is unreachable at {ADMIN_URL} ({type(exc).__name__}: {exc}); "
            "start it (see README, 'Running the tests') or set CALLBOARD_TEST_POSTGRES_URL"
        ) from None
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def url_with_database(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    name = f"cb_test_{uuid.uuid4().hex[:16]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield url_with_database(name)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'callboard.db'}"
    else:
        with postgres_database() as url:
            yield url
