"""Group commit: many concurrent writers, one transaction and one fsync per batch.

Each caller awaits its own result; while one batch is being written, new arrivals queue up and
go together in the next. Under load batches grow by themselves; when idle a lone callback is
written at once, so latency does not wait for a timer.

A writer whose results nobody is held up by (the delivery worker's attempt records: the endpoint's
slot is free before its record is written) can also `linger`: a batch of more than one but fewer
than `fill` items waits that long, or until it has `fill`, for more to join it. A lone item is
still written at once, so nothing lingers when idle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

MAX_BATCH = 512


class GroupCommit(Generic[In, Out]):
    def __init__(
        self,
        flush: Callable[[list[In]], Awaitable[list[Out]]],
        max_batch: int = MAX_BATCH,
        *,
        linger: float = 0.0,
        fill: int = MAX_BATCH,
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._linger = linger
        self._fill = min(fill, max_batch)
        self._filled: asyncio.Future[None] | None = None  # set while lingering: resolved at `fill`
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def submit(self, item: In) -> Out:
        if self._closed:
            raise RuntimeError("the store is closing")
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._filled is not None and len(self._pending) >= self._fill:
            _resolve(self._filled)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while self._pending or not self._closed:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._linger and 1 < len(self._pending) < self._fill and not self._closed:
                await self._wait_for_more()
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            items = [item for item, _ in batch]
            try:
                results = await self._flush(items)
            except BaseException as exc:  # every waiter learns its write failed; none is told it succeeded
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _wait_for_more(self) -> None:
        """Up to `linger` seconds, until `fill` items are pending (or the writer closes)."""
        loop = asyncio.get_running_loop()
        self._filled = filled = loop.create_future()
        timer = loop.call_later(self._linger, _resolve, filled)
        try:
            await filled
        finally:
            timer.cancel()
            self._filled = None

    async def close(self) -> None:
        """Write what is queued, then stop."""
        self._closed = True
        self._wakeup.set()
        if self._filled is not None:
            _resolve(self._filled)
        if self._task is not None:
            await self._task


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


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
