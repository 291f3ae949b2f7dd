"""Garbage-collection policy for a process holding thousands of long-lived websockets.

CPython's full collection walks every tracked object; at 5000 connections that stalls the event
loop for 170-420 ms, during which no paint goes out. Young collections hurt too (measured at
5000 tabs and 1000 calls/s): every frame a tab receives leaves a fresh chain of waiting
coroutines and futures that lives until its next frame, while the frames replace old lists; each
freed old object lowers the young generation's count, so survivors pile up and a generation-1
pass walks tens of thousands of them (15-60 ms). Long-lived objects never need scanning, so:

1. after start-up everything alive is frozen (``gc.freeze``): collections skip it;
2. every ``interval`` (50 ms) the young generations are collected (what survived 50 ms: a few
   hundred objects, well under a millisecond) and the survivors frozen at once, so no collection
   ever walks more than 50 ms worth of objects and the old generation stays empty;
3. the price: cyclic garbage that was frozen while alive (handshakes in progress, tabs that
   close later) is not collected while frozen (measured: ~3 kB per tab opened). Once the tab
   churn (opened + closed) reaches ``compact_after`` or peak memory grew by ``grow_ratio``
   since the last compaction, and no call has arrived and no tab has opened for ``quiet_for``
   seconds, everything is unfrozen, collected and frozen again: one deliberate full pass when no
   paint waits for it. If it is never quiet, the compaction happens anyway once the churn
   exceeds ``force_ratio`` times the open tabs or memory doubled, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import resource
import time
from collections.abc import Callable

from gateway.live.tabs import Tabs

log = logging.getLogger("callguard.gc")

INTERVAL = 0.05


def freeze_survivors() -> None:
    """Collect the young generations and freeze what survived: old stays empty, nothing to walk."""
    gc.collect(1)
    gc.freeze()


def peak_rss_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class GcPolicy:
    def __init__(
        self,
        tabs: Tabs,
        last_call: Callable[[], float],
        *,
        compact_after: int = 1000,
        grow_ratio: float = 0.25,
        quiet_for: float = 2.0,
        force_ratio: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
        memory: Callable[[], int] = peak_rss_kb,
    ) -> None:
        self.tabs = tabs
        self.last_call = last_call
        self.compact_after = compact_after
        self.grow_ratio = grow_ratio
        self.quiet_for = quiet_for
        self.force_ratio = force_ratio
        self.clock = clock
        self.memory = memory
        self._churn_at_compact = 0
        self._memory_at_compact = 0
        self._opened_seen = 0
        self._last_open = 0.0  # clock() when a tick last saw new tabs
        self.freezes = 0
        self.compactions = 0
        self.last_compaction = 0.0  # seconds the latest compaction held the loop

    @property
    def churn(self) -> int:
        return self.tabs.opened + self.tabs.closed - self._churn_at_compact

    def after_startup(self) -> None:
        gc.collect()
        gc.freeze()
        self._mark_compacted()
        log.debug("froze %d objects after start-up", gc.get_freeze_count())

    def tick(self) -> None:
        now = self.clock()
        if self.tabs.opened != self._opened_seen:
            self._opened_seen, self._last_open = self.tabs.opened, now
        if self._compaction_due(now):
            self.compact()
            return
        freeze_survivors()  # only what is younger than one interval is unfrozen
        self.freezes += 1

    def _compaction_due(self, now: float) -> bool:
        churn = self.churn
        grown = self.memory() / max(self._memory_at_compact, 1) - 1.0
        if churn < self.compact_after and grown < self.grow_ratio:
            return False
        if now - max(self.last_call(), self._last_open) >= self.quiet_for:
            return True
        return churn > self.force_ratio * max(self.tabs.count, self.compact_after) or grown >= 1.0

    def compact(self) -> None:
        started = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.compactions += 1
        self.last_compaction = time.perf_counter() - started
        self._mark_compacted()
        log.info("GC compaction took %.0f ms", self.last_compaction * 1000)

    def _mark_compacted(self) -> None:
        self._churn_at_compact = self.tabs.opened + self.tabs.closed
        self._memory_at_compact = self.memory()

    async def run(self, interval: float = INTERVAL) -> None:
        while True:
            await asyncio.sleep(interval)
            self.tick()
