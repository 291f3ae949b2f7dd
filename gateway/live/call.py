"""One call's values: the event as it enters the pipeline, its paint, its state while it lasts,
and the two neighbours the pipeline (:mod:`gateway.live.calls`) reports to: other processes'
calls and the ledger."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from gateway.live import wire
from gateway.live.inflight import InFlight
from rules.model import Decision


class Peers(Protocol):
    def elsewhere(self, user_id: str) -> dict[str, str]:
        """Call id -> current paint frame of ``user_id``'s calls held by other processes."""
        ...


class Ledger(Protocol):
    """Where decided calls are recorded (gateway.ledger.writer): each method only queues."""

    def record(self, paint: Paint) -> None: ...

    def ended(self, user_id: str, call_id: str) -> None: ...

    def applied(self, user_id: str, call_id: str, latency_ms: float | None) -> None: ...


# CallEvent and Paint are made for every call and read by the ledger's thread: immutable, as
# named tuples. A frozen dataclass is immutable too, but its __init__ sets each field through
# object.__setattr__: 1.2 µs to make an event against 0.4, ~8,000 of a call's ~200,000
# instructions for the two (bench/call_instructions.py).
class CallEvent(NamedTuple):
    user_id: str
    call_id: str
    phone: str  # E.164 key from rules.normalize
    direction: wire.Direction
    source: str  # "ws", "api", "portal"
    received: float  # time.perf_counter() when the event arrived
    lang: str = "ru"  # the language of the paint's text: the reporting tab's, or the portal's


class Paint(NamedTuple):
    event: CallEvent
    seq: int
    decision: Decision

    @property
    def frame(self) -> str:
        return wire.paint(self.event.call_id, self.seq, self.decision, self.event.lang)


@dataclass(slots=True)
class CallState:
    """A call the pipeline knows: its latest event, its paint, and the decides under way."""

    event: CallEvent
    seq: int = 0
    paint: Paint | None = None
    generation: int = 0  # bumped by each new event, so a late decision of an older one is dropped
    timer: asyncio.TimerHandle | None = None
    deciding: int = 0  # decides under way: while any is, the call holds one place in flight

    def hold(self, places: InFlight) -> None:
        """One more decide; the first takes the call's place (admitted by the caller)."""
        self.deciding += 1
        if self.deciding == 1:
            places.take(self.event.user_id)

    def release(self, places: InFlight) -> None:
        self.deciding -= 1
        if not self.deciding:
            places.give(self.event.user_id)
