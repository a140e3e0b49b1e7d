"""Leases and heartbeats (`durable=False`) commit without waiting for the disk; everything else waits.

On SQLite the commit runs under `synchronous=NORMAL` (no fsync of its own); on PostgreSQL the
session has `synchronous_commit = off` (no wait for the WAL flush). Both stay atomic and visible
at once; a later durable commit makes them durable too, since each database writes its log in order.
"""

from __future__ import annotations

from storage.store import Store, open_store

#: each backend's setting, as a durable and as a lease transaction see it
LEVELS = {"sqlite": ("PRAGMA synchronous", (2, 1)), "postgres": ("SHOW synchronous_commit", ("on", "off"))}


async def level(store: Store, *, durable: bool, autocommit: bool = False) -> object:
    query = LEVELS[store.db.dialect][0]
    context = store.db.autocommit(durable=durable) if autocommit else store.db.transaction(durable=durable)
    async with context as tx:
        [row] = await tx.fetch(query)
        return row[0]


async def test_leases_do_not_wait_for_the_disk_and_other_writes_do(store: Store) -> None:
    durable_level, lease_level = LEVELS[store.db.dialect][1]
    for autocommit in (False, True):
        assert await level(store, durable=True, autocommit=autocommit) == durable_level
        assert await level(store, durable=False, autocommit=autocommit) == lease_level
        assert await level(store, durable=True, autocommit=autocommit) == durable_level  # set back


async def test_a_lease_is_seen_by_another_process_at_once(store: Store, database_url: str) -> None:
    await store.meta_set("heartbeat", "1", durable=False)
    async with open_store(database_url, migrate=False) as other:  # another connection, as the CLI's
        assert await other.get_meta("heartbeat") == "1"
        await store.meta_set("heartbeat", "2", durable=False)
        assert await other.get_meta("heartbeat") == "2"
