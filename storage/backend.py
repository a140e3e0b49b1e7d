"""What a database backend provides to the store: connections, transactions, migrations.

The store's SQL is written once, with `?` placeholders and portable syntax (`ON CONFLICT`,
`RETURNING`, row values); a backend adapts the rest: placeholders, `FOR UPDATE SKIP LOCKED`
where the database has it, how connections are pooled and how writers are serialized.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

MIGRATIONS = Path(__file__).parent / "migrations"


class Executor(Protocol):
    """Runs SQL on one connection. Rows support `row["column"]`."""

    async def fetch(self, sql: str, *args: Any) -> list[Any]: ...

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int | None:
        """Run `sql` once per row; the rows it inserted, updated or deleted in all, where the
        driver reports it (SQLite), else None."""
        ...


class DatabaseUnavailableError(Exception):
    """The database cannot be reached right now (the HTTP layer answers 503)."""


class Backend(abc.ABC):
    #: appended to the sub-select that claims rows; empty where the database serializes writers anyway
    skip_locked: str = ""
    #: appended to a sub-select whose rows must be locked in its order (deadlock-free lock order)
    for_update: str = ""
    dialect: str

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def read(self) -> AbstractAsyncContextManager[Executor]:
        """A connection for reads (no transaction guarantees across statements)."""

    @abc.abstractmethod
    def transaction(self, *, durable: bool = True) -> AbstractAsyncContextManager[Executor]:
        """A write transaction: committed when the block ends, rolled back on an exception.

        `durable=False` is for writes whose loss in a power failure or an operating-system crash
        is harmless, a lease or a heartbeat: lost, the row is claimed again after the restart, as
        when a lease runs out. Such a transaction is atomic and visible to all at once as any
        other, but where the database can tell the difference it does not wait for the disk."""

    def autocommit(self, *, durable: bool = True) -> AbstractAsyncContextManager[Executor]:
        """For a write that is one statement: where each statement is its own transaction
        (PostgreSQL), a connection outside any, saving BEGIN and COMMIT; a transaction elsewhere.
        A durable one must be a write whose plan does not depend on its values (rows reached by
        key): PostgreSQL runs it on its generic plan, made once (`storage.postgres.WRITE_PLANS`)."""
        return self.transaction(durable=durable)

    @abc.abstractmethod
    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied."""

    async def wait_for_work(self, channel: str, timeout: float) -> None:
        """Block until another process signals `channel` or `timeout` passes (polling by default)."""
        import asyncio

        await asyncio.sleep(timeout)

    async def notify(self, executor: Executor, channel: str) -> None:  # noqa: B027 - optional hook, no-op by default
        """Wake other processes waiting on `channel` (no-op where there are none to wake)."""


def migration_files(dialect: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) for each migration file of a dialect, in order."""
    found = []
    for path in sorted((MIGRATIONS / dialect).glob("*.sql")):
        found.append((int(path.name.split("_", 1)[0]), path.stem, path.read_text()))
    return found


def placeholders(n: int) -> str:
    return "(" + ", ".join("?" * n) + ")"
