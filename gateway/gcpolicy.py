"""Garbage-collection policy for a process holding thousands of long-lived websockets.

CPython's full collection walks every tracked object; at 5000 connections that stalls the event
loop for 170-420 ms, during which no paint goes out. Long-lived objects (imports, the app, the
data file, and each open connection) never need scanning while they live, so:

1. after start-up everything alive is frozen (``gc.freeze``): full collections skip it;
2. as tabs connect, the newcomers are frozen too, each time ``refreeze_after`` tabs opened (a
   young collection first, so fresh garbage is not frozen with them);
3. the price: cyclic garbage of a frozen connection that closes is not collected while frozen.
   Once ``compact_after`` tabs have closed, and only while no call has arrived for
   ``quiet_for`` seconds, everything is unfrozen, collected once and frozen again: one deliberate
   full pass, at a moment when no paint is waiting for it.

The young-generation threshold is raised so short-lived garbage (frames, messages) is collected
in fewer, still short passes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

from gateway.tabs import Tabs

log = logging.getLogger("callguard.gc")

GEN0_THRESHOLD = 20_000


class GcPolicy:
    def __init__(
        self,
        tabs: Tabs,
        last_call: Callable[[], float],
        *,
        refreeze_after: int = 200,
        compact_after: int = 2000,
        quiet_for: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tabs = tabs
        self.last_call = last_call
        self.refreeze_after = refreeze_after
        self.compact_after = compact_after
        self.quiet_for = quiet_for
        self.clock = clock
        self._opened_at_freeze = 0
        self._closed_at_compact = 0
        self.freezes = 0
        self.compactions = 0

    def after_startup(self) -> None:
        gc.collect()
        gc.freeze()
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
        self._opened_at_freeze = self.tabs.opened
        self._closed_at_compact = self.tabs.closed
        log.debug("froze %d objects after start-up", gc.get_freeze_count())

    def tick(self) -> None:
        churned = self.tabs.closed - self._closed_at_compact >= self.compact_after
        if churned and self.clock() - self.last_call() >= self.quiet_for:
            self.compact()
            return
        if self.tabs.opened - self._opened_at_freeze >= self.refreeze_after:
            gc.collect(1)
            gc.freeze()
            self.freezes += 1
            self._opened_at_freeze = self.tabs.opened

    def compact(self) -> None:
        started = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.compactions += 1
        self._opened_at_freeze = self.tabs.opened
        self._closed_at_compact = self.tabs.closed
        log.info("GC compaction while idle took %.0f ms", (time.perf_counter() - started) * 1000)

    async def run(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            self.tick()
