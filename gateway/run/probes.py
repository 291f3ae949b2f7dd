"""Process health probes: how late the event loop wakes up, and how long GC pauses last.

A stalled loop delays every paint, whatever the cause (a full garbage collection at thousands of
connections, a blocking call); the lag probe measures it from inside, the GC probe names the GC's
share. Both feed :class:`gateway.run.metrics.Metrics` and keep their worst value since ``reset``.

A late wake-up is not always the loop's doing: on a busy machine the thread may be ready to run
and wait for a CPU. Where Linux tells (``/proc/thread-self/schedstat``: the thread's time spent
runnable but not running), the lag probe also keeps the worst stall less that wait
(``worst_own``), so a benchmark on a shared 2-core machine can tell the gateway's stalls from
the machine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
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
        self.worst_own = 0.0  # the worst stall less the time the thread waited for a CPU
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
        self.worst_own = 0.0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        waited = _CpuWait.of_this_thread()  # the loop's
        while True:
            before, waited_before = loop.time(), waited.seconds()
            await asyncio.sleep(self.interval)
            stall = max(0.0, loop.time() - before - self.interval)
            self.metrics.loop_stall.observe(stall)
            self.worst = max(self.worst, stall)
            own = max(0.0, stall - (waited.seconds() - waited_before))
            self.worst_own = max(self.worst_own, own)
            if stall > self._ever:
                self._ever = stall
                self.metrics.loop_stall_max.set(stall)


class _CpuWait:
    """How long one thread has waited, runnable, for a CPU (Linux schedstat; 0 elsewhere).
    One ``pread`` of a file kept open: ~1.3 µs, a hundred times a second."""

    _threads = threading.local()

    @classmethod
    def of_this_thread(cls) -> _CpuWait:
        """The calling thread's, opened on its first use (the file names the thread that opens
        it) and closed when the thread ends, with its thread-local data."""
        wait: _CpuWait | None = getattr(cls._threads, "wait", None)
        if wait is None:
            wait = cls._threads.wait = _CpuWait()
        return wait

    def __init__(self) -> None:
        self._fd: int | None = None
        with contextlib.suppress(OSError):
            self._fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)

    def __del__(self) -> None:
        self.close()

    def seconds(self) -> float:
        if self._fd is None:
            return 0.0
        try:
            return int(os.pread(self._fd, 128, 0).split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class GcProbe:
    """Times every collection through ``gc.callbacks``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.worst = 0.0
        self.worst_generation = -1
        self.worst_own = 0.0  # the longest pause less the time its thread waited for a CPU
        self.collections = 0
        self._started = 0.0
        self._waited = 0.0  # the collecting thread's CPU wait when the collection started
        self._ever = 0.0

    def start(self) -> None:
        gc.callbacks.append(self._callback)

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def reset(self) -> None:
        self.worst = 0.0
        self.worst_generation = -1
        self.worst_own = 0.0
        self.collections = 0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        # Whichever thread allocates collects (the loop's, or the ledger's writer): its own wait.
        waited = _CpuWait.of_this_thread()
        if phase == "start":
            self._started = time.perf_counter()
            self._waited = waited.seconds()
            return
        pause = time.perf_counter() - self._started
        generation = int(info.get("generation", -1))
        self.collections += 1
        self.metrics.gc_pause.labels(str(generation)).observe(pause)
        self.worst_own = max(self.worst_own, pause - (waited.seconds() - self._waited))
        if pause > self.worst:
            self.worst, self.worst_generation = pause, generation
        if pause > self._ever:
            self._ever = pause
            self.metrics.gc_pause_max.set(pause)
