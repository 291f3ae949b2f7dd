"""Deliver a frame to every open tab of one user, wherever the tab is connected.

:class:`LocalFanout` serves a single process: publishing is queueing on the local registry.
:class:`gateway.live.redisfanout.RedisFanout` (``CALLGUARD_REDIS_URL`` set) serves several
processes behind one balancer, through Redis.
"""

from __future__ import annotations

from typing import Protocol

import orjson

from gateway.live.tabs import Tabs


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


TYPE_FIRST = '{"type":"'  # how gateway/live/wire.py starts every frame it writes


def frame_type(frame: str) -> str:
    """A frame's ``type``. Ours name it first, so it is read off the front without parsing a
    frame of a few hundred bytes (each paint was parsed up to three times on its way through
    Redis); anything else, e.g. a foreign message on the channel, is parsed."""
    if frame.startswith(TYPE_FIRST):
        end = frame.find('"', len(TYPE_FIRST))
        kind = frame[len(TYPE_FIRST) : end]
        if end > 0 and "\\" not in kind:
            return kind
    doc = orjson.loads(frame)
    named = doc.get("type") if isinstance(doc, dict) else None
    return named if isinstance(named, str) else ""
