"""A tab's queue of frames to send: at most one per call, bounded in bytes (gateway/live/tabs.py).

A pure state machine: no socket, no clock of its own.
"""

from __future__ import annotations

import itertools
from enum import Enum


class Put(Enum):
    QUEUED = "queued"
    REPLACED = "replaced"  # a newer frame for the same call took the older one's place
    OVERFLOW = "overflow"  # the tab is too far behind: close it
    CLOSED = "closed"


def size_of(frame: str) -> int:
    """A frame's size on the wire, in bytes (UTF-8: paints carry Russian text)."""
    return len(frame) if frame.isascii() else len(frame.encode())


class Outbox:
    """Pending frames of one tab, at most one per key (a call id), oldest key first, at most
    ``limit`` bytes in all."""

    __slots__ = ("_pending", "closed", "limit", "sending_since", "size")
    _unique = itertools.count()

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0  # bytes pending
        self._pending: dict[str, tuple[str, int]] = {}
        self.sending_since: float | None = None
        self.closed = False

    def put(self, key: str | None, frame: str) -> Put:
        """Queue ``frame``; ``key=None`` for frames that never replace each other (errors)."""
        if self.closed:
            return Put.CLOSED
        size = size_of(frame)
        old = self._pending.get(key) if key is not None else None
        grown = self.size + size - (old[1] if old is not None else 0)
        if grown > self.limit:
            return Put.OVERFLOW
        self.size = grown
        if key is not None and old is not None:
            self._pending[key] = (frame, size)
            return Put.REPLACED
        self._pending[key if key is not None else f"\0{next(self._unique)}"] = (frame, size)
        return Put.QUEUED

    def take(self, now: float) -> str | None:
        """The next frame to send (and the send starts now), or None when empty or closed."""
        if self.closed or not self._pending:
            self.sending_since = None
            return None
        key = next(iter(self._pending))
        self.sending_since = now
        frame, size = self._pending.pop(key)
        self.size -= size
        return frame

    def sent(self) -> None:
        self.sending_since = None

    def stuck(self, now: float, limit: float) -> bool:
        """True when one send has been blocked for ``limit`` seconds: the peer stopped reading."""
        return self.sending_since is not None and now - self.sending_since >= limit

    def close(self) -> None:
        self.closed = True
        self._pending.clear()
        self.size = 0

    def __len__(self) -> int:
        return len(self._pending)
