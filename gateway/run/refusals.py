"""Refusals: connections and tabs turned away for crossing a limit, counted and logged sparingly.

Every refusal counts in ``callguard_connections_refused_total{reason}``. The log gets at most one
line per reason per :data:`LOG_EVERY` seconds: the first refusal is logged at once, the ones
after it within the window are only counted, and one line when the window ends says how many
there were. A flood of refusals is what these limits are for; it must not become a flood of log
lines. :class:`RefusalLog` is the pure part (no clock, no logger); :class:`Refusals` drives it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from gateway.run.metrics import Metrics

log = logging.getLogger("callguard.limits")

LOG_EVERY = 60.0  # seconds between two lines about one reason

# reason -> what was refused, and the setting behind it (docs/operations.md "Limits")
WHY = {
    "max_connections": "connections refused at once: CALLGUARD_MAX_CONNECTIONS were open",
    "header_timeout": "connections closed: no complete request within CALLGUARD_HEADER_TIMEOUT",
    "url_too_long": "requests refused (414): a URL over CALLGUARD_MAX_URL",
    "headers_too_large": "requests refused (431): headers over CALLGUARD_MAX_HEADERS",
    "bad_request": "requests refused (400): not valid HTTP or not a valid websocket handshake",
    "too_many_tabs": "tabs closed (1008): a user opened more than CALLGUARD_MAX_TABS_PER_USER",
    "unread_output": "websockets closed (1008): unread output over CALLGUARD_TAB_QUEUE_BYTES",
    "ping_flood": "websockets closed (1008): pings faster than CALLGUARD_TAB_PING_RATE",
}


class RefusalLog:
    """When to write a line: the first refusal of a reason at once, then one per window."""

    __slots__ = ("_opened", "_pending", "every")

    def __init__(self, every: float = LOG_EVERY) -> None:
        self.every = every
        self._opened: dict[str, float] = {}  # reason -> when its last line was written
        self._pending: dict[str, int] = {}  # reason -> refused since that line

    def note(self, reason: str, now: float) -> int:
        """Count one refusal; how many to report in a line now (0: not now, it is counted)."""
        opened = self._opened.get(reason)
        if opened is not None and now - opened < self.every:
            self._pending[reason] = self._pending.get(reason, 0) + 1
            return 0
        self._opened[reason] = now
        return 1 + self._pending.pop(reason, 0)

    def due(self, now: float) -> list[tuple[str, int]]:
        """Reasons whose window has ended with refusals not yet reported, and how many."""
        out = []
        for reason, count in list(self._pending.items()):
            if now - self._opened[reason] >= self.every:
                del self._pending[reason]
                self._opened[reason] = now
                out.append((reason, count))
        return out

    def flush(self) -> list[tuple[str, int]]:
        """Every count not yet reported (shutdown)."""
        out = list(self._pending.items())
        self._pending.clear()
        return out

    def next_due(self, now: float) -> float | None:
        """Seconds until the next :meth:`due` has something (None: nothing is pending)."""
        if not self._pending:
            return None
        return max(0.0, min(self._opened[r] for r in self._pending) + self.every - now)


class Refusals:
    """The metric and the log line of every refusal, from the server and from the tabs."""

    def __init__(
        self,
        metrics: Metrics,
        every: float = LOG_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self._log = RefusalLog(every)
        self._timer: asyncio.TimerHandle | None = None

    def refuse(self, reason: str, who: str | None = None) -> None:
        """Count one refusal for ``reason`` (a key of :data:`WHY`); ``who``: a peer address or a
        user, for the log line (never a token or a phone number)."""
        self.metrics.connections_refused.labels(reason).inc()
        count = self._log.note(reason, self.clock())
        if count:
            self._write(reason, count, who)
        elif self._timer is None:
            self._schedule()

    def close(self) -> None:
        """Write what is still counted but not logged, and stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for reason, count in self._log.flush():
            self._write(reason, count, None)

    def _tick(self) -> None:
        self._timer = None
        for reason, count in self._log.due(self.clock()):
            self._write(reason, count, None)
        self._schedule()  # refusals of other reasons, whose windows end later

    def _schedule(self) -> None:
        delay = self._log.next_due(self.clock())
        if delay is not None:
            self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    def _write(self, reason: str, count: int, who: str | None) -> None:
        latest = f" (latest: {who})" if who else ""
        log.warning(
            "%d %s%s; at most one such line per %g s (callguard_connections_refused_total"
            '{reason="%s"})',
            count,
            WHY.get(reason, reason),
            latest,
            self._log.every,
            reason,
        )
