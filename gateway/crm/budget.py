"""The portal's request budget: one leaky bucket per portal, live lookups first.

Bitrix24 counts requests in a leaky bucket per portal **and source IP** (reference §6.5, §8a):
+1 per HTTP request (a ``batch`` is one), draining ``per_second``; above ``burst`` it answers
``QUERY_LIMIT_EXCEEDED``. Cloud plans: 2/s, burst 50; enterprise plans 5/s, burst 250; on-premise
portals as their owner configured them (settings ``CALLGUARD_RATE_PER_SECOND``/``RATE_BURST``).

- **Lanes.** A live call's lookup is ``live``; pre-warm, refresh after CRM events, the status
  guard and ``setup-portal`` are ``background``. Background work may not fill the bucket's last
  ``reserve`` places, and waits behind every live request queued in this process. The lane comes
  from :func:`background` (a context variable, so a task started inside inherits it) or from the
  client call's ``background=`` argument. A live caller that joins a background lookup in flight
  promotes it (:meth:`Lane.promote`).
- **No place without a request.** A request takes its place in the bucket only when it is let
  through, right before it is sent. One that cannot be let through before its deadline gives up
  at once and takes nothing; one that waits and gives up (cancelled) leaves the queue.
- **Shared.** With ``CALLGUARD_REDIS_URL`` set the level lives in Redis and is changed by one Lua
  script (atomic, on Redis' clock), so every process of the gateway draws on the same bucket.
- **Fair share** (per user, issue 14): a :class:`Lane` may carry a ``user``; ``per_user`` caps
  what one user's lookups may take of the bucket, so one flood cannot drain it for everybody.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from gateway.crm import metrics as m


@dataclass(slots=True)
class Lane:
    """Who asks: live or background, for which user, and how many requests it still needs.
    One lookup is one lane: its requests keep the place in the queue its first one took, so a
    lookup that has begun finishes before new ones start (a half-done lookup is wasted budget)."""

    live: bool = True
    user: str | None = None
    expect: int = 1  # requests this work still needs, counting the next one
    seq: int | None = None  # its place in the queue, from its first request
    _bucket: Budget | None = field(default=None, repr=False)

    def promote(self) -> None:
        """A live caller now waits for this work: it goes first from here on."""
        if not self.live:
            self.live = True
            if self._bucket is not None:
                self._bucket.wake()


LANE: ContextVar[Lane | None] = ContextVar("callguard_rest_lane", default=None)


@contextlib.contextmanager
def background() -> Iterator[Lane]:
    """REST requests made inside (and in tasks started inside) use the background lane."""
    lane = Lane(live=False)
    token = LANE.set(lane)
    try:
        yield lane
    finally:
        LANE.reset(token)


@contextlib.contextmanager
def for_user(user: str) -> Iterator[Lane]:
    """A live lookup for ``user``: REST requests made inside count against the user's share."""
    lane = Lane(live=True, user=user)
    token = LANE.set(lane)
    try:
        yield lane
    finally:
        LANE.reset(token)


def current_lane(background: bool | None = None) -> Lane:
    lane = LANE.get()
    if background is None:
        return lane if lane is not None else Lane()
    if lane is not None and lane.live == (not background):
        return lane
    return Lane(live=not background, user=lane.user if lane else None)


class Level(Protocol):
    """Where the bucket's level is kept: this process, or Redis for all of them."""

    async def take(self, cap: float) -> float:
        """Take one place if the level stays within ``cap``: 0.0; else seconds until it would."""
        ...

    async def fill(self) -> None:
        """The portal said its bucket is full: believe it."""
        ...


class LocalLevel:
    def __init__(self, burst: int, per_second: float) -> None:
        self.burst = burst
        self.per_second = per_second
        self.level = 0.0
        self.stamp = time.monotonic()

    def _drain(self) -> None:
        now = time.monotonic()
        self.level = max(0.0, self.level - (now - self.stamp) * self.per_second)
        self.stamp = now

    def wait(self, cap: float) -> float:
        self._drain()
        return max(0.0, (self.level + 1 - cap) / self.per_second)

    async def take(self, cap: float) -> float:
        wait = self.wait(cap)
        if wait <= 0:
            self.level += 1
        return wait

    async def fill(self) -> None:
        self._drain()
        self.level = max(self.level, float(self.burst))


class BudgetExhausted(Exception):
    def __init__(self, wait: float) -> None:
        super().__init__(f"next request in {wait:.2f} s")
        self.wait = wait


@dataclass(slots=True)
class _Waiter:
    lane: Lane
    seq: int
    woken: asyncio.Event = field(default_factory=asyncio.Event)


class Budget:
    """The queue in front of a :class:`Level`: who goes next, and who gives up."""

    def __init__(
        self,
        level: Level,
        burst: int,
        per_second: float,
        *,
        reserve: int = 10,
        per_user: float = 1.0,
    ) -> None:
        self.level = level
        self.burst = burst
        self.per_second = per_second
        # The live lane's own places: at most half the bucket, so background work still runs.
        self.reserve = min(reserve, burst // 2)
        self.per_user = per_user  # share of the bucket one user's requests may hold (1.0: all)
        self._users: dict[str, LocalLevel] = {}
        self._queue: list[_Waiter] = []
        self._head_wait = 0.0  # what the first in the queue was last told to wait
        self._seq = itertools.count()

    @property
    def queued(self) -> int:
        """Requests waiting for a place now (a gauge for /healthz and tests)."""
        return len(self._queue)

    def cap(self, lane: Lane) -> float:
        return float(self.burst if lane.live else self.burst - self.reserve)

    def wake(self) -> None:
        for waiter in self._queue:
            waiter.woken.set()

    @staticmethod
    def _order(w: _Waiter) -> tuple[bool, int, int]:
        return (not w.lane.live, w.lane.seq if w.lane.seq is not None else w.seq, w.seq)

    def _head(self) -> _Waiter:
        return min(self._queue, key=self._order)

    def _ahead(self, me: _Waiter) -> int:
        key = self._order(me)
        return sum(1 for w in self._queue if self._order(w) < key)

    async def acquire(self, lane: Lane, deadline: float) -> None:
        """Wait for a place; :class:`BudgetExhausted` at once if it cannot come in time."""
        self._user_share(lane)
        me = _Waiter(lane, next(self._seq))
        if lane.seq is None:
            lane.seq = me.seq
        lane._bucket = self
        self._queue.append(me)
        waited = False
        try:
            while True:
                head = self._head() is me
                wait = await self.level.take(self.cap(lane)) if head else 0.0
                if head and wait <= 0:
                    self._head_wait = 0.0
                    if waited:
                        m.budget_waits.labels(_name(lane)).inc()
                    self._take_user(lane)
                    return
                # The places this work needs after this one come at the drain rate at best.
                rest = max(0, lane.expect - 1) / self.per_second
                if head:
                    self._head_wait = wait
                    projected = wait + rest
                else:
                    # Behind a throttled head each place ahead drains first; behind one that is
                    # going through, wait to be woken.
                    ahead = self._ahead(me) / self.per_second
                    projected = self._head_wait + ahead + rest if self._head_wait > 0 else 0.0
                now = time.monotonic()
                if now + projected >= deadline:
                    m.budget_refusals.labels(_name(lane)).inc()
                    raise BudgetExhausted(max(projected, wait))
                waited = True
                me.woken.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(me.woken.wait(), wait if head else deadline - now)
        finally:
            self._queue.remove(me)
            self.wake()

    async def fill(self) -> None:
        await self.level.fill()

    # -- a user's share (issue 14) -----------------------------------------------------------
    def _user_share(self, lane: Lane) -> None:
        if lane.user is None or self.per_user >= 1.0:
            return
        share = self._users.get(lane.user)
        if share is None:
            if len(self._users) > 10_000:  # bounded: forget users whose share has drained
                self._users = {u: s for u, s in self._users.items() if s.wait(1.0) > 0}
            burst = max(1, int(self.burst * self.per_user))
            share = self._users[lane.user] = LocalLevel(burst, self.per_second * self.per_user)
        wait = share.wait(share.burst)
        if wait > 0:
            m.budget_refusals.labels("user").inc()
            raise BudgetExhausted(wait)

    def _take_user(self, lane: Lane) -> None:
        share = self._users.get(lane.user or "")
        if share is not None:
            share.level += 1


def _name(lane: Lane) -> str:
    return "live" if lane.live else "background"
