"""Who is connected: user -> tabs, each tab with a bounded send queue and a slow-tab policy.

Colours are state, not events: a tab's queue (:class:`Outbox`) holds at most one pending frame
per call, so a tab that falls behind skips straight to the newest paint (or the ``clear``) of each
call. The queue is bounded in bytes (``CALLGUARD_TAB_QUEUE_BYTES``), not in frames, as push
servers bound a subscriber's buffer: a burst of many calls fits, only a tab that stopped reading
fills it. A tab whose queue overflows, or whose send has been blocked for longer than
``stuck_after`` (the heartbeat sweep checks), is closed with 1013 and leaves the registry at once,
so it never delays the others. Dead peers are dropped by the server's websocket pings
(``settings.heartbeat``). A user has at most ``CALLGUARD_MAX_TABS_PER_USER`` tabs in a process:
one more closes the user's oldest with 1008 "too many tabs".

:class:`Outbox`, :class:`Conduct` and :class:`gateway.live.bucket.TokenBucket` (a tab's ``call``
frames per second) are pure state machines (no sockets, no clock of their own; the outbox in
gateway/live/outbox.py); :class:`Tab` drives them over anything with ``send_text`` and ``close``,
and writes a frame at once where the server offers ``send_now`` and nothing waits before it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from gateway.live import wire
from gateway.live.bucket import TokenBucket
from gateway.live.outbox import Outbox, Put

log = logging.getLogger("callguard.tabs")

CLOSE_TOKEN = 4401
CLOSE_ABUSE = 1008
CLOSE_SLOW = 1013
CLOSE_GOING_AWAY = 1001
# Calls a tab remembers having been painted (for ``applied``): more than any popup shows at once.
MAX_PAINTED = 64

DEFAULT_QUEUE_BYTES = 256 * 1024  # CALLGUARD_TAB_QUEUE_BYTES
DEFAULT_CALL_RATE = 10.0  # CALLGUARD_TAB_CALL_RATE: ``call`` frames per second per tab
DEFAULT_MAX_PER_USER = 30  # CALLGUARD_MAX_TABS_PER_USER, in this process
TOO_MANY_TABS = "too many tabs"
# The longest a tab over its call rate is left unread: its pings still get answers well within
# the heartbeat, and its other frames (``ended``, ``applied``) are late by no more than this.
MAX_CALL_WAIT = 1.0


# The ASGI scope extension through which the server (gateway/run/tabsocket.py) offers a weak
# reference to ``send_now(text) -> bool``: write a text frame at once if the socket takes it now.
SEND_NOW = "callguard.send_now"


class Socket(Protocol):
    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class Conduct:
    """A tab's bad frames: ``limit`` of them within ``window`` seconds is abuse (close 1008)."""

    __slots__ = ("_times", "limit", "window")

    def __init__(self, limit: int = 8, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._times: list[float] = []

    def strike(self, now: float) -> bool:
        """Record one bad frame; True when the tab has now crossed the line."""
        self._times = [t for t in self._times if now - t < self.window]
        self._times.append(now)
        return len(self._times) >= self.limit


class Tab:
    """One open websocket of one user: an outbox drained by a task that exists only while busy."""

    __slots__ = (
        "_closer",
        "_painted",
        "_sender",
        "call_rate",
        "conduct",
        "outbox",
        "rate_logged",
        "registry",
        "send_now",
        "socket",
        "user_id",
    )

    def __init__(
        self,
        registry: Tabs,
        user_id: str,
        socket: Socket,
        send_now: Callable[[str], bool] | None = None,
    ) -> None:
        self.registry = registry
        self.user_id = user_id
        self.socket = socket
        self.send_now = send_now  # None: every frame goes through the sender task
        self.outbox = Outbox(registry.queue_bytes)
        # Both are created when first needed: most tabs never send a bad frame, and send a
        # ``call`` frame only when the phone rings.
        self.conduct: Conduct | None = None
        self.call_rate: TokenBucket | None = None
        self.rate_logged = False
        self._sender: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        # call id -> frames pushed for it and not yet acknowledged by an ``applied`` (bounded)
        self._painted: dict[str, int] | None = None

    def push(self, key: str | None, frame: str) -> None:
        # Only a paint is acknowledged with ``applied``; a clear, keyed by its call as well (it
        # replaces the call's paint still queued), is not.
        if key is not None and frame.startswith(wire.PAINT_START):
            self._note_painted(key)
        # Nothing waits to go out (no sender: the outbox is empty) and the socket takes the frame
        # now: written here, without a task to start, schedule and end for every frame (the
        # sender's task and its trip through the ASGI send were ~30% of a paint's CPU:
        # bench/call_cost.py "deliver"). Otherwise it queues, and the sender keeps the order.
        send_now = self.send_now
        if (
            send_now is not None
            and self._sender is None
            and not self.outbox.closed
            and send_now(frame)
        ):
            return
        result = self.outbox.put(key, frame)
        if result is Put.OVERFLOW:
            log.info("closing a tab of user %s whose queue is full (1013)", self.user_id)
            self.close(CLOSE_SLOW, "too slow: the tab stopped reading")
        elif result is Put.QUEUED and self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._drain())
            self.registry.sending[self] = None

    def may_call(self) -> bool:
        """Take one ``call`` frame from this tab's budget; False when it is spent (rate limited)."""
        if self.call_rate is None:
            rate = self.registry.call_rate
            self.call_rate = TokenBucket(rate=rate, burst=max(1.0, rate))
        if self.call_rate.take(self.registry.clock()):
            return True
        if not self.rate_logged:  # one line per tab, not one per refused frame
            self.rate_logged = True
            log.info(
                "a tab of user %s sends more than %g call frames per second; refusing the rest",
                self.user_id,
                self.registry.call_rate,
            )
        return False

    def call_wait(self) -> float:
        """After a refused ``call`` frame: seconds to leave this tab's next frames unread, until
        its budget has a token again (at most :data:`MAX_CALL_WAIT`)."""
        bucket = self.call_rate
        return 0.0 if bucket is None else min(MAX_CALL_WAIT, bucket.wait(self.registry.clock()))

    def _note_painted(self, call_id: str) -> None:
        painted = self._painted
        if painted is None:
            painted = self._painted = {}
        painted[call_id] = painted.pop(call_id, 0) + 1
        if len(painted) > MAX_PAINTED:
            del painted[next(iter(painted))]

    def take_painted(self, call_id: str) -> bool:
        """An ``applied`` for ``call_id`` counts only once per frame this tab was sent for it."""
        painted = self._painted
        left = painted.get(call_id, 0) if painted is not None else 0
        if left <= 0 or painted is None:
            return False
        if left == 1:
            del painted[call_id]
        else:
            painted[call_id] = left - 1
        return True

    def strike(self) -> bool:
        """Count one bad frame from this tab; True (and the tab closes 1008) on abuse."""
        if self.conduct is None:
            self.conduct = Conduct()
        if self.conduct.strike(self.registry.clock()):
            self.close(CLOSE_ABUSE, "too many invalid frames")
            return True
        return False

    @property
    def closed(self) -> bool:
        return self.outbox.closed

    @property
    def closed_by_gateway(self) -> bool:
        """Closed with a code of ours (counted in ``callguard_tab_closes``). A tab whose send
        failed is closed as well, but by the peer: its code comes with the disconnect."""
        return self._closer is not None

    def close(self, code: int, reason: str) -> None:
        """Stop sending, leave the registry, and close the socket in the background."""
        if self.outbox.closed:
            return
        self.outbox.close()
        self.registry.remove(self)
        self.registry.closed_with(code)
        if self._sender is not None:
            # A send blocked on a peer that stopped reading would block the close frame too.
            self._sender.cancel()
            self._sender = None
        self._closer = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _drain(self) -> None:
        clock = self.registry.clock
        try:
            while (frame := self.outbox.take(clock())) is not None:
                await self.socket.send_text(frame)
                self.outbox.sent()
        except Exception:  # the peer went away mid-send: the receive loop will see it
            self.outbox.close()
            self.registry.remove(self)
        finally:
            if self._sender is asyncio.current_task():
                self._sender = None
                self.registry.sending.pop(self, None)

    async def _close(self, code: int, reason: str) -> None:
        try:
            await self.socket.close(code, reason)
        except Exception:  # already gone: nothing left to tell it
            log.debug("tab of user %s was gone before close %d", self.user_id, code)


class Tabs:
    """The registry: user id -> open tabs, counts, delivery, and the heartbeat sweep."""

    def __init__(
        self,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        stuck_after: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        call_rate: float = DEFAULT_CALL_RATE,
        max_per_user: int = DEFAULT_MAX_PER_USER,
    ) -> None:
        self.queue_bytes = queue_bytes
        self.max_per_user = max_per_user
        self.call_rate = call_rate
        self.stuck_after = stuck_after
        self.clock = clock
        self._by_user: dict[str, dict[Tab, None]] = {}
        # Tabs with a sender task: only their sends can be stuck, so the sweep looks at these
        # instead of walking every tab (2.7 ms a sweep at 20,000 idle tabs, all for nothing).
        self.sending: dict[Tab, None] = {}
        self._count = 0
        self._changed = asyncio.Event()
        self.on_close: Callable[[int], None] | None = None  # metrics hook: close code
        self.on_evict: Callable[[str], None] | None = None  # a user's oldest tab was closed

    def open(
        self, user_id: str, socket: Socket, send_now: Callable[[str], bool] | None = None
    ) -> Tab:
        """A new tab for ``user_id``, registered before anything is sent to it. A user at
        ``max_per_user`` tabs loses the oldest (1008 "too many tabs"): the newest is the one
        the user is looking at, and a page left open somewhere is the likelier to be stale."""
        while len(held := self._by_user.get(user_id, {})) >= self.max_per_user:
            oldest = next(iter(held))  # insertion order: the oldest open tab first
            log.debug("user %s opened tab %d: closing the oldest", user_id, len(held) + 1)
            oldest.close(CLOSE_ABUSE, TOO_MANY_TABS)
            if self.on_evict is not None:
                self.on_evict(user_id)
        tab = Tab(self, user_id, socket, send_now)
        self._by_user.setdefault(user_id, {})[tab] = None
        self._count += 1
        self._signal()
        return tab

    def remove(self, tab: Tab) -> None:
        self.sending.pop(tab, None)  # a closed tab's sender is cancelled, maybe before it ran
        tabs = self._by_user.get(tab.user_id)
        if tabs is None or tab not in tabs:
            return
        del tabs[tab]
        if not tabs:
            del self._by_user[tab.user_id]
        self._count -= 1
        self._signal()

    def closed_with(self, code: int) -> None:
        if self.on_close is not None:
            self.on_close(code)

    def deliver(self, user_id: str, key: str | None, frame: str) -> int:
        """Queue ``frame`` on every open tab of ``user_id``; the number of tabs reached."""
        tabs = self._by_user.get(user_id)
        if not tabs:
            return 0
        for tab in list(tabs):
            tab.push(key, frame)  # its size is measured only if it has to queue
        return len(tabs)

    def of(self, user_id: str) -> list[Tab]:
        return list(self._by_user.get(user_id, ()))

    def __iter__(self) -> Iterator[Tab]:
        for tabs in list(self._by_user.values()):
            yield from list(tabs)

    @property
    def count(self) -> int:
        return self._count

    @property
    def users(self) -> int:
        return len(self._by_user)

    def sweep(self) -> int:
        """Close every tab whose send has been blocked too long; how many were closed."""
        now = self.clock()
        stuck = [tab for tab in self.sending if tab.outbox.stuck(now, self.stuck_after)]
        for tab in stuck:
            log.info("closing a stuck tab of user %s (1013)", tab.user_id)
            tab.close(CLOSE_SLOW, "too slow: a send was blocked")
        return len(stuck)

    async def run_sweeps(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.sweep()

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down") -> None:
        for tab in self:
            tab.close(code, reason)

    async def wait_until(self, predicate: Callable[[Tabs], bool]) -> None:
        """Wait (tests, benchmarks: under ``asyncio.timeout``) until ``predicate(self)`` holds."""
        while not predicate(self):
            await self._changed.wait()

    def _signal(self) -> None:
        # Wake every waiter once, then start a fresh event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()
