"""A bounded work queue drained by a fixed number of worker tasks.

The portal's webhook is answered at once and the work runs here. When the queue is full an item is
dropped (the caller counts and logs it) rather than queued: the portal does not retry anyway, and
an unbounded queue would only turn a burst into memory growth and stale work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("callguard.queues")

T = TypeVar("T")


class WorkQueue(Generic[T]):
    def __init__(
        self, name: str, handle: Callable[[T], Awaitable[None]], capacity: int, workers: int
    ) -> None:
        if capacity < 1 or workers < 1:
            raise ValueError(f"{name}: capacity and workers must be at least 1")
        self.name = name
        self._handle = handle
        self._queue: asyncio.Queue[T] = asyncio.Queue(capacity)
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []

    def offer(self, item: T) -> bool:
        """Queue ``item``; False (and nothing queued) when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    @property
    def size(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._work(), name=f"{self.name}-{i}") for i in range(self._workers)
        ]

    async def join(self) -> None:
        """Wait until everything queued so far has been handled."""
        await self._queue.join()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._handle(item)
            except Exception:
                # One bad item must not stop the worker: log it with its traceback and go on.
                log.exception("%s: handling %r failed", self.name, item)
            finally:
                self._queue.task_done()
