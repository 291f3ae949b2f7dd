"""Marks that came before their row: a call's end or its ring -> applied latency, recorded by a
process whose ledger writer found no row of the call in the database.

With several processes on one database the call may have entered one process (which decided
it, painted it and writes its row) while the user's tab is on another (which records what the
tab says). Each writer gathers its batch for a quarter of a second, so the second process's
marks may well commit before the first one's row. Such a mark is held here and tried again
with the writer's next batches: after ``retry`` seconds, then after twice as long each time,
until it has been tried ``tries`` times in all (~30 s by default, ample for a peer's batch or a
short outage), and only then given up and counted
(``callguard_ledger_dropped{reason="no_row"}``). The writer's thread alone uses this.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge

from gateway.store.ledger_sink import Applied, Ended

RETRY = 0.5
TRIES = 7  # the first and six more: 0.5 + 1 + 2 + 4 + 8 + 16 = 31.5 s

_Key = tuple[bool, str, str]  # (an end, not a latency; caller, call)


class HeldMarks:
    def __init__(
        self, waiting: Gauge, given_up: Counter, *, retry: float, tries: int, capacity: int
    ) -> None:
        self.waiting = waiting
        self.given_up = given_up
        self.retry = retry
        self.tries = tries
        self.capacity = capacity
        # key -> (when it is due again, tries so far, the mark); oldest first
        self._held: dict[_Key, tuple[float, int, Any]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def due(self, everything: bool = False) -> tuple[list[Ended], list[Applied]]:
        """The held marks due for another try (``everything``: all of them)."""
        now = time.monotonic()
        ended: list[Ended] = []
        applied: list[Applied] = []
        for (is_end, _, _), (at, _, mark) in self._held.items():
            if everything or at <= now:
                (ended if is_end else applied).append(mark)
        return ended, applied

    def next_due(self) -> float | None:
        """When (``time.monotonic()``) the first held mark is due; None: none is held."""
        return min((at for at, _, _ in self._held.values()), default=None)

    def settle(
        self,
        ended: list[Ended],
        applied: list[Applied],
        unmatched: tuple[list[Ended], list[Applied]] = ([], []),
    ) -> None:
        """After a batch with these marks: those written (or dropped with the batch: no
        ``unmatched``) are no longer held; those that matched no row are, or are given up."""
        late = dict(_keyed(*unmatched))
        for key, _ in _keyed(ended, applied):
            if key not in late:
                self._held.pop(key, None)
        now = time.monotonic()
        spent = []
        for key, mark in late.items():
            tries = self._held[key][1] + 1 if key in self._held else 1
            if tries >= self.tries:
                spent.append(key)
            else:
                self._held.pop(key, None)  # to the end: the oldest stay first
                self._held[key] = (now + self.retry * 2 ** (tries - 1), tries, mark)
        for key in spent:
            self._held.pop(key, None)
        excess = max(0, len(self._held) - self.capacity)
        self.give_up(spent + list(self._held)[:excess])  # the oldest first

    def give_up(self, keys: list[_Key] | None = None) -> None:
        """Stop holding ``keys`` (None: every mark held), counted as given up."""
        keys = list(self._held) if keys is None else keys
        for key in keys:
            self._held.pop(key, None)
        self.given_up.inc(len(keys))
        self.waiting.set(len(self._held))


def _keyed(ended: list[Ended], applied: list[Applied]) -> list[tuple[_Key, Any]]:
    """Each mark with its key: the kind, the caller and the call."""
    return [((True, m[1], m[2]), m) for m in ended] + [((False, m[1], m[2]), m) for m in applied]
