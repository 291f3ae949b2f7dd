"""Deliver a frame to every open tab of one user, wherever the tab is connected.

:class:`LocalFanout` serves a single process: publishing is queueing on the local registry. A
multi-process deployment needs a fanout that crosses processes (Redis pub/sub, design.md §1); it
implements the same :class:`Fanout` protocol, publishes to a channel and delivers what it receives
through :meth:`gateway.tabs.Tabs.deliver`, so nothing before it in the pipeline changes.
"""

from __future__ import annotations

from typing import Protocol

from gateway.tabs import Tabs


class Fanout(Protocol):
    async def publish(self, user_id: str, key: str | None, frame: str) -> None:
        """Send ``frame`` to all tabs of ``user_id``; ``key`` (a call id) lets a newer frame for
        the same call replace an unsent older one."""
        ...

    async def close(self) -> None: ...


class LocalFanout:
    def __init__(self, tabs: Tabs) -> None:
        self.tabs = tabs

    async def publish(self, user_id: str, key: str | None, frame: str) -> None:
        self.tabs.deliver(user_id, key, frame)

    async def close(self) -> None:
        return None
