"""What every part of the store shares."""

from __future__ import annotations

import contextlib

from storage.backend import Backend, Executor


class StoreBase:
    db: Backend

    def _autocommit(self) -> contextlib.AbstractAsyncContextManager[Executor]:
        """One statement in its own transaction (PostgreSQL); a shared transaction elsewhere."""
        autocommit = getattr(self.db, "autocommit", None)
        return autocommit() if autocommit is not None else self.db.transaction()
