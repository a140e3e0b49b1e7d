"""Group commit: many concurrent writers, one transaction and one fsync per batch.

Each caller awaits its own result; while one batch is being written, new arrivals queue up and
go together in the next. Under load batches grow by themselves; when idle a lone callback is
written at once, so latency does not wait for a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

MAX_BATCH = 512


class GroupCommit(Generic[In, Out]):
    """`submit()` an item, get its result once the batch it went in is written.

    Items submitted in one pass of the event loop go together; while `concurrency` batches are
    being written, new arrivals queue up for the next one. With a `concurrency` above one (a
    database that takes concurrent write transactions on separate connections: PostgreSQL), a
    batch does not wait for the commit of the one before it.
    """

    def __init__(
        self, flush: Callable[[list[In]], Awaitable[list[Out]]], max_batch: int = MAX_BATCH, concurrency: int = 1
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._writing: set[asyncio.Task[None]] = set()
        self._scheduled = False
        self._closed = False

    async def submit(self, item: In) -> Out:
        if self._closed:
            raise RuntimeError("the store is closing")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        self._pending.append((item, future))
        if not self._scheduled:  # the others submitted in this pass of the loop go with it
            self._scheduled = True
            loop.call_soon(self._start)
        return await future

    def _start(self) -> None:
        self._scheduled = False
        while self._pending and len(self._writing) < self._concurrency:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            task = asyncio.create_task(self._write(batch), name="group-commit")
            self._writing.add(task)
            task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writing.discard(task)
        self._start()  # what queued up meanwhile

    async def _write(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
        except BaseException as exc:  # every waiter learns its write failed; none is told it succeeded
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        """Write what is queued, then stop."""
        self._closed = True
        while self._pending or self._writing:
            self._start()
            await asyncio.gather(*self._writing, return_exceptions=True)


async def write_or_split(
    batch: list[In], write: Callable[[list[In]], Awaitable[list[Out]]], *, together: bool = True
) -> list[Out | Exception]:
    """`write(batch)`, the results in batch order; when it raises (or `together` is false), each
    item is written alone, so one that cannot be written fails by itself (its result is the
    exception), not the others with it."""
    if together or len(batch) == 1:
        try:
            return list(await write(batch))
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
    return [result for item in batch for result in await write_or_split([item], write)]
