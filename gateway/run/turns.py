"""New connections' first requests, a few per turn of the event loop.

The loop handles every socket that became readable in one turn before any timer or other
callback runs. When tabs connect in a crowd (a gateway restart, the portal's morning), each
turn held hundreds of websocket handshakes, ~1 ms each on a 2-core virtual machine with the
load generator beside it: `callguard loadtest --tabs 19500` stalled the loop 230 ms while the
tabs connected, and a call arriving then waited as long. :class:`Openings` lets at most
:data:`OPENINGS_PER_TURN` new connections start their first request in one turn; the others wait,
in arrival order, for the turns after, with reading paused. Connections already open are never
held: a call on a tab or a kept-alive ``POST`` goes on at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

# A few ms of handshakes a turn on the machine above. Measured there (19,500 tabs, 200
# connecting at a time): no bound 230 ms worst stall while connecting, 56 s to connect them all;
# 8 a turn 30 ms and 45 s; 4 a turn 13 ms and 43 s (the loop reads its other sockets and runs
# its timers between turns, and the crowd was no slower for it).
OPENINGS_PER_TURN = 4


class Openings:
    def __init__(self, per_turn: int = OPENINGS_PER_TURN) -> None:
        self.per_turn = per_turn
        self.taken = 0  # first requests started this turn
        self.waiting: deque[Callable[[], None]] = deque()
        self.scheduled = False  # a next turn is booked: it resets ``taken``, runs the waiting

    def admit(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether a new connection may start its first request now; if not, :meth:`wait`."""
        if self.waiting or self.taken >= self.per_turn:
            return False
        self.taken += 1
        self._book(loop)
        return True

    def wait(self, loop: asyncio.AbstractEventLoop, start: Callable[[], None]) -> None:
        """Call ``start`` in a later turn, after those already waiting."""
        self.waiting.append(start)
        self._book(loop)

    def _book(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._turn, loop)

    def _turn(self, loop: asyncio.AbstractEventLoop) -> None:
        # Runs once per turn while connections open: sockets read in the turn before this one
        # ran first, so each turn reads the loop's other sockets and runs its timers too.
        self.scheduled = False
        self.taken = 0
        while self.waiting and self.taken < self.per_turn:
            self.taken += 1
            self.waiting.popleft()()
        if self.waiting or self.taken:
            self._book(loop)
