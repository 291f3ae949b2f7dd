"""What tests do to the fake portal: count its requests, slow it down, break it, rate-limit it.

Every fault matches a method name (``"*"`` matches any) and fires ``times`` times (None: until
cleared). Error faults also fire for ``batch`` sub-commands (the error lands in ``result_error``);
latency, hangs and garbage act on whole HTTP requests.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gateway.tools.fakeportal.store import RestError

T = TypeVar("T")


@dataclass(slots=True)
class Fault:
    kind: str  # "error" | "hang" | "garbage"
    method: str = "*"
    times: int | None = 1
    status: int = 503
    error: str = "QUERY_LIMIT_EXCEEDED"
    description: str = "Too many requests"
    reset_in: float | None = None  # OPERATION_TIME_LIMIT: seconds until operating_reset_at


@dataclass(slots=True)
class LeakyBucket:
    """The portal's request-rate limit (§6.5): +1 per request, drains ``per_second``."""

    burst: int
    per_second: float
    level: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def admit(self) -> bool:
        now = time.monotonic()
        self.level = max(0.0, self.level - (now - self.stamp) * self.per_second)
        self.stamp = now
        if self.level + 1 > self.burst:
            return False
        self.level += 1
        return True


class Recorder(Generic[T]):
    """A list that tests can await: ``await rec.wait(3)`` returns once three items arrived."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self._changed = asyncio.Event()

    def append(self, item: T) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait(self, count: int = 1, within: float = 5.0) -> list[T]:
        async with asyncio.timeout(within):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()
        return list(self.items)

    def clear(self) -> None:
        self.items.clear()


class Faults:
    def __init__(self) -> None:
        self.latency = 0.0  # seconds, every HTTP request
        self.method_latency: dict[str, float] = {}
        self.command_latency = 0.0  # seconds of server time per method run (batch: each)
        self.active: list[Fault] = []
        self.bucket: LeakyBucket | None = None
        self.requests: Counter[str] = Counter()  # HTTP requests by method ("batch" is one)
        self.commands: Counter[str] = Counter()  # methods run, batch sub-commands included
        self.released = asyncio.Event()  # set on close: hung requests give up
        self._arrived = asyncio.Event()

    def count(self, method: str) -> None:
        self.requests[method] += 1
        self._arrived.set()

    async def requests_seen(self, count: int, within: float = 5.0) -> None:
        """Wait until ``count`` HTTP requests arrived (since the last reset)."""
        async with asyncio.timeout(within):
            while sum(self.requests.values()) < count:
                self._arrived.clear()
                await self._arrived.wait()

    def add(self, fault: Fault) -> Fault:
        self.active.append(fault)
        return fault

    def clear(self) -> None:
        self.active.clear()
        self.latency = 0.0
        self.method_latency.clear()
        self.command_latency = 0.0

    def reset_counters(self) -> None:
        self.requests.clear()
        self.commands.clear()

    def delay(self, method: str) -> float:
        return self.latency + self.method_latency.get(method, 0.0)

    def take(self, method: str, kinds: tuple[str, ...]) -> Fault | None:
        for fault in self.active:
            if fault.kind in kinds and fault.method in ("*", method):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.active.remove(fault)
                return fault
        return None

    def check_error(self, method: str) -> None:
        """Raise the next error fault for ``method``, if any (HTTP requests and sub-commands)."""
        fault = self.take(method, ("error",))
        if fault is not None:
            raise RestError(fault.status, fault.error, fault.description)

    def rate_limited(self) -> bool:
        return self.bucket is not None and not self.bucket.admit()
