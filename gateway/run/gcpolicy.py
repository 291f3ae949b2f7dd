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
   ever walks more than 50 ms worth of objects and the old generation stays empty.

Nothing ever unfreezes and collects everything: that pass is the very stall this policy exists
to avoid (200-700 ms at 5000 tabs). The price would be cyclic garbage that was frozen while alive
and died later; a tab's objects die by reference counting instead (frozen or not, they are
freed), because the one cycle a tab's connection used to leave behind — uvicorn's HTTP protocol
after the websocket upgrade — is broken where it is made (:class:`gateway.run.server.
TabHttpProtocol`); tests/run/test_gcpolicy.py shows that a churn of tabs leaves no garbage.
``callguard_gc_frozen_objects`` is the count at start-up only: counting the frozen set walks all
of it with the GIL held.
"""

from __future__ import annotations

import asyncio
import gc
import logging

log = logging.getLogger("callguard.gc")

INTERVAL = 0.05


def freeze_survivors() -> None:
    """Collect the young generations and freeze what survived: old stays empty, nothing to walk."""
    gc.collect(1)
    gc.freeze()


class GcPolicy:
    def __init__(self) -> None:
        self.freezes = 0

    def after_startup(self) -> int:
        """Freeze what start-up left alive; how many objects that was. Counted here, before any
        tab: ``gc.get_freeze_count()`` walks the whole frozen set (355 ms at 19,500 tabs)."""
        gc.collect()
        gc.freeze()
        frozen = gc.get_freeze_count()
        log.debug("froze %d objects after start-up", frozen)
        return frozen

    def tick(self) -> None:
        freeze_survivors()  # only what is younger than one interval is unfrozen
        self.freezes += 1

    async def run(self, interval: float = INTERVAL) -> None:
        while True:
            await asyncio.sleep(interval)
            self.tick()
