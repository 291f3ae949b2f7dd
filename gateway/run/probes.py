"""Process health probes: how late the event loop wakes up, and how long GC pauses last.

A stalled loop delays every paint, whatever the cause (a full garbage collection at thousands of
connections, a blocking call); the lag probe measures it from inside, the GC probe names the GC's
share. Both feed :class:`gateway.run.metrics.Metrics` and keep their worst value since ``reset``.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from gateway.run.metrics import Metrics

LAG_INTERVAL = 0.01


class LagProbe:
    """Sleeps ``interval`` again and again; anything beyond ``interval`` is loop stall."""

    def __init__(self, metrics: Metrics, interval: float = LAG_INTERVAL) -> None:
        self.metrics = metrics
        self.interval = interval
        self.worst = 0.0
        self._ever = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def reset(self) -> None:
        self.worst = 0.0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            stall = max(0.0, loop.time() - before - self.interval)
            self.metrics.loop_stall.observe(stall)
            self.worst = max(self.worst, stall)
            if stall > self._ever:
                self._ever = stall
                self.metrics.loop_stall_max.set(stall)


class GcProbe:
    """Times every collection through ``gc.callbacks``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.worst = 0.0
        self.worst_generation = -1
        self.collections = 0
        self._started = 0.0
        self._ever = 0.0

    def start(self) -> None:
        gc.callbacks.append(self._callback)

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def reset(self) -> None:
        self.worst = 0.0
        self.worst_generation = -1
        self.collections = 0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = int(info.get("generation", -1))
        self.collections += 1
        self.metrics.gc_pause.labels(str(generation)).observe(pause)
        if pause > self.worst:
            self.worst, self.worst_generation = pause, generation
        if pause > self._ever:
            self._ever = pause
            self.metrics.gc_pause_max.set(pause)
