"""The per-tab state machines without sockets, and the registry over a recording socket."""

from __future__ import annotations

import asyncio

from gateway.live.tabs import CLOSE_ABUSE, CLOSE_SLOW, Conduct, Outbox, Put, Tabs
from tests.timing import timeout


def test_outbox_keeps_only_the_newest_frame_per_call() -> None:
    box = Outbox(capacity=2)
    assert box.put("c1", "paint 1") is Put.QUEUED
    assert box.put("c1", "paint 2") is Put.REPLACED
    assert box.put(None, "error a") is Put.QUEUED
    assert box.put("c1", "clear") is Put.REPLACED
    assert box.put("c2", "paint") is Put.OVERFLOW
    assert box.take(now=1.0) == "clear"
    assert box.take(now=1.0) == "error a"
    assert box.take(now=1.0) is None


def test_frames_without_a_key_never_replace_each_other() -> None:
    box = Outbox(capacity=3)
    for frame in ("e1", "e2", "e3"):
        assert box.put(None, frame) is Put.QUEUED
    assert [box.take(0.0), box.take(0.0), box.take(0.0)] == ["e1", "e2", "e3"]


def test_a_send_blocked_past_the_limit_is_stuck() -> None:
    box = Outbox(capacity=4)
    box.put("c1", "paint")
    assert not box.stuck(now=0.0, limit=1.0)
    assert box.take(now=10.0) == "paint"
    assert not box.stuck(now=10.5, limit=1.0)
    assert box.stuck(now=11.0, limit=1.0)
    box.sent()
    assert not box.stuck(now=99.0, limit=1.0)


def test_a_closed_outbox_takes_nothing() -> None:
    box = Outbox(capacity=4)
    box.put("c1", "paint")
    box.close()
    assert box.put("c1", "paint") is Put.CLOSED
    assert box.take(0.0) is None
    assert len(box) == 0


def test_conduct_counts_strikes_within_the_window() -> None:
    conduct = Conduct(limit=3, window=10.0)
    assert not conduct.strike(0.0)
    assert not conduct.strike(1.0)
    assert not conduct.strike(20.0)  # the first two have aged out
    assert not conduct.strike(21.0)
    assert conduct.strike(22.0)


class RecordingSocket:
    """A real Socket: records frames; while ``gate`` is clear, sends block like a full buffer."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.closed: tuple[int, str | None] | None = None
        self.gate = asyncio.Event()
        self.gate.set()
        self.arrived = asyncio.Event()

    async def send_text(self, data: str) -> None:
        await self.gate.wait()
        self.frames.append(data)
        self.arrived.set()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = (code, reason)
        self.arrived.set()

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(timeout()):
            while len(self.frames) < count:
                self.arrived.clear()
                await self.arrived.wait()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_delivery_reaches_every_tab_of_the_user_only() -> None:
    tabs = Tabs(capacity=4)
    a1, a2, b = RecordingSocket(), RecordingSocket(), RecordingSocket()
    tabs.open("1", a1)
    tabs.open("1", a2)
    tabs.open("2", b)
    assert (tabs.count, tabs.users) == (3, 2)
    assert tabs.deliver("1", "c1", "paint") == 2
    await a1.wait(1)
    await a2.wait(1)
    assert a1.frames == a2.frames == ["paint"]
    assert b.frames == []
    assert tabs.deliver("3", "c1", "paint") == 0


async def test_a_stuck_tab_is_swept_with_1013_and_leaves_the_registry() -> None:
    clock = Clock()
    closes: list[int] = []
    tabs = Tabs(capacity=4, stuck_after=5.0, clock=clock)
    tabs.on_close = closes.append
    slow, fast = RecordingSocket(), RecordingSocket()
    slow.gate.clear()
    slow_tab = tabs.open("1", slow)
    tabs.open("1", fast)
    for seq in range(10):
        tabs.deliver("1", "c1", f"paint {seq}")
    await fast.wait(1)
    assert tabs.sweep() == 0
    clock.now = 6.0
    assert tabs.sweep() == 1
    assert slow_tab.closed
    assert slow_tab not in tabs.of("1")
    assert tabs.count == 1
    async with asyncio.timeout(timeout()):
        await tabs.wait_until(lambda t: t.count == 1)
        while slow.closed is None:
            slow.arrived.clear()
            await slow.arrived.wait()
    assert slow.closed[0] == CLOSE_SLOW
    assert closes == [CLOSE_SLOW]
    assert fast.frames[-1] == "paint 9"
    tabs.deliver("1", "c1", "paint 10")
    await fast.wait(2)
    assert slow.frames == []


async def test_an_outbox_that_overflows_closes_the_tab() -> None:
    tabs = Tabs(capacity=2)
    sock = RecordingSocket()
    sock.gate.clear()
    tab = tabs.open("1", sock)
    for call in ("c1", "c2", "c3", "c4"):
        tabs.deliver("1", call, "paint " + call)
    assert tab.closed
    assert tabs.count == 0


async def test_abuse_closes_with_1008() -> None:
    tabs = Tabs()
    sock = RecordingSocket()
    tab = tabs.open("1", sock)
    assert not any(tab.strike() for _ in range(7))
    assert tab.strike()
    async with asyncio.timeout(timeout()):
        while sock.closed is None:
            sock.arrived.clear()
            await sock.arrived.wait()
    assert sock.closed[0] == CLOSE_ABUSE


async def test_close_all_closes_every_tab() -> None:
    tabs = Tabs()
    socks = [RecordingSocket() for _ in range(3)]
    for i, sock in enumerate(socks):
        tabs.open(str(i), sock)
    tabs.close_all()
    assert tabs.count == 0
    await asyncio.sleep(0)
    assert all(s.closed and s.closed[0] == 1001 for s in socks)


async def test_a_send_that_fails_drops_the_tab() -> None:
    class GoneSocket(RecordingSocket):
        async def send_text(self, data: str) -> None:
            raise ConnectionResetError("peer went away")

    tabs = Tabs()
    tab = tabs.open("1", GoneSocket())
    tabs.deliver("1", "c1", "paint")
    async with asyncio.timeout(timeout()):
        await tabs.wait_until(lambda t: t.count == 0)
    assert tab.closed


async def test_run_sweeps_sweeps_periodically() -> None:
    clock = Clock()
    tabs = Tabs(stuck_after=1.0, clock=clock)
    sock = RecordingSocket()
    sock.gate.clear()
    tabs.open("1", sock)
    tabs.deliver("1", "c1", "paint")
    await asyncio.sleep(0)
    clock.now = 5.0
    sweeper = asyncio.ensure_future(tabs.run_sweeps(0.01))
    try:
        async with asyncio.timeout(timeout()):
            await tabs.wait_until(lambda t: t.count == 0)
    finally:
        sweeper.cancel()
