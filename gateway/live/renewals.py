"""Token renewal for open tabs (design.md §3.7): one timer heap for all of them.

A tab's token is renewed when 40-50% of its lifetime has passed (the spread keeps the tabs of a
reconnect storm from renewing in one burst), well before the 60% the contract promises. The tab
gets ``{"type":"token","token","expires_at"}``: the same user, the same lifetime, and keeps it for
its reconnects, so a page left open all day never meets 4401.

Thousands of tabs share one :class:`asyncio.TimerHandle`, armed for the earliest renewal due; a
tab that closes is forgotten lazily (its heap entry is skipped) and the heap is compacted when
stale entries outnumber live ones, so closed tabs are not kept alive for hours.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
import time
from collections.abc import Callable

from gateway.live import wire
from gateway.live.tabs import Tab
from gateway.live.tokens import Identity, issue_token

EARLIEST = 0.4  # share of the lifetime after which a renewal may go out
LATEST = 0.5  # ... and by which it is due (the contract says 0.6)
GAP = 0.1  # share of the lifetime that at least separates two renewals of one tab
BATCH = 64  # renewals per loop turn: each signs a JWT, so a storm of them must not stall the loop

# due (wall-clock seconds), entry number (unique: ties never compare tabs), tab, lifetime
_Entry = tuple[float, int, Tab, int]


class Renewals:
    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.clock = clock
        self.on_renew: Callable[[], None] | None = None  # metrics hook
        self._heap: list[_Entry] = []
        self._live: dict[Tab, int] = {}  # tab -> the number of its one valid entry
        self._numbers = itertools.count()
        self._timer: asyncio.Handle | None = None
        self._armed_for = math.inf

    def add(self, tab: Tab, identity: Identity) -> None:
        """Renew ``tab``'s token (the one ``identity`` came from) before it runs out."""
        self._push(tab, identity.issued_at, identity.lifetime)
        self._arm()

    def forget(self, tab: Tab) -> None:
        """``tab`` has left: it needs no more renewals."""
        if self._live.pop(tab, None) is None:
            return
        if len(self._heap) > 2 * len(self._live) + 64:
            self._heap = [e for e in self._heap if self._live.get(e[2]) == e[1]]
            heapq.heapify(self._heap)

    def __len__(self) -> int:
        """Tabs waiting for a renewal."""
        return len(self._live)

    @property
    def entries(self) -> int:
        """Heap entries, stale ones of tabs that left included (bounded by compaction)."""
        return len(self._heap)

    @property
    def next_due(self) -> float | None:
        """When the earliest renewal is due (wall-clock seconds), if any."""
        return self._heap[0][0] if self._heap else None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._armed_for = None, math.inf
        self._heap.clear()
        self._live.clear()

    def _push(self, tab: Tab, issued_at: float, lifetime: int, now: float = -math.inf) -> None:
        number = next(self._numbers)
        self._live[tab] = number
        due = issued_at + lifetime * random.uniform(EARLIEST, LATEST)
        # iat is whole seconds, up to one behind ``now``: without this floor a token of a few
        # seconds would be due again at once, and renewed in a loop.
        due = max(due, now + lifetime * GAP)
        heapq.heappush(self._heap, (due, number, tab, lifetime))

    def _arm(self) -> None:
        """Point the one timer at the earliest entry, if it is not already."""
        if not self._heap:
            return
        due = self._heap[0][0]
        if due >= self._armed_for:
            return
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, due - self.clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)
        self._armed_for = due

    def _fire(self) -> None:
        self._timer, self._armed_for = None, math.inf
        now = self.clock()
        done = 0
        while self._heap and self._heap[0][0] <= now and done < BATCH:
            _, number, tab, lifetime = heapq.heappop(self._heap)
            if self._live.get(tab) != number:
                continue  # a stale entry of a tab that left
            if tab.closed:
                del self._live[tab]
                continue
            self._renew(tab, lifetime, now)
            done += 1
        if done == BATCH:  # more are due: let the loop breathe, then go on
            self._timer = asyncio.get_running_loop().call_soon(self._fire)
            self._armed_for = -math.inf
            return
        self._arm()

    def _renew(self, tab: Tab, lifetime: int, now: float) -> None:
        issued = int(now)
        token = issue_token(self.secret, tab.user_id, lifetime, issued)
        # Not keyed: a renewal never replaces a paint, and a tab this far behind is closed anyway.
        tab.push(None, wire.token(token, issued + lifetime))
        self._push(tab, issued, lifetime, now)
        if self.on_renew is not None:
            self.on_renew()
