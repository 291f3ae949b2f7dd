"""The per-tab state machines without sockets, and the registry over a recording socket."""

from __future__ import annotations

import asyncio

import pytest

from gateway.live import wire
from gateway.live.bucket import TokenBucket
from gateway.live.outbox import Outbox, Put
from gateway.live.tabs import (
    CLOSE_ABUSE,
    CLOSE_SLOW,
    MAX_CALL_WAIT,
    TOO_MANY_TABS,
    Conduct,
    Tabs,
)
from rules.model import Decision
from tests.timing import timeout


def test_outbox_keeps_only_the_newest_frame_per_call() -> None:
    box = Outbox(limit=14)
    assert box.put("c1", "paint 1") is Put.QUEUED
    assert box.put("c1", "paint 2") is Put.REPLACED
    assert box.put(None, "error a") is Put.QUEUED
    assert box.put("c1", "clear") is Put.REPLACED
    assert box.size == len("clear") + len("error a")
    assert box.put("c2", "paint") is Put.OVERFLOW
    assert box.take(now=1.0) == "clear"
    assert box.take(now=1.0) == "error a"
    assert box.take(now=1.0) is None
    assert box.size == 0


def test_the_outbox_bound_is_in_bytes_not_frames() -> None:
    box = Outbox(limit=100)
    for call in range(50):  # fifty small frames fit where a frame count of 16 would not
        assert box.put(f"c{call}", "x") is Put.QUEUED
    assert box.put("c50", "x" * 51) is Put.OVERFLOW
    assert box.put("c0", "x" * 52) is Put.OVERFLOW  # a replacement that outgrows the bound
    assert box.put("c0", "x" * 50) is Put.REPLACED
    assert box.size == 99
    russian = Outbox(limit=10)
    assert russian.put("c1", "Ромашка") is Put.OVERFLOW  # 7 characters, 14 bytes of UTF-8


def test_frames_without_a_key_never_replace_each_other() -> None:
    box = Outbox(limit=100)
    for frame in ("e1", "e2", "e3"):
        assert box.put(None, frame) is Put.QUEUED
    assert [box.take(0.0), box.take(0.0), box.take(0.0)] == ["e1", "e2", "e3"]


def test_a_send_blocked_past_the_limit_is_stuck() -> None:
    box = Outbox(limit=100)
    box.put("c1", "paint")
    assert not box.stuck(now=0.0, limit=1.0)
    assert box.take(now=10.0) == "paint"
    assert not box.stuck(now=10.5, limit=1.0)
    assert box.stuck(now=11.0, limit=1.0)
    box.sent()
    assert not box.stuck(now=99.0, limit=1.0)


def test_a_closed_outbox_takes_nothing() -> None:
    box = Outbox(limit=100)
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


def test_a_token_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=10.0)
    assert [bucket.take(5.0) for _ in range(11)] == [True] * 10 + [False]
    assert not bucket.take(5.05)  # half a token has come back
    assert [bucket.take(5.25) for _ in range(3)] == [True, True, False]  # two and a half
    assert [bucket.take(100.0) for _ in range(11)] == [True] * 10 + [False]  # never above burst
    assert not bucket.take(99.0)  # a clock that goes back gives nothing back


def test_a_token_bucket_says_when_its_next_token_comes() -> None:
    bucket = TokenBucket(rate=10.0, burst=2.0)
    assert bucket.wait(1.0) == 0.0  # full
    assert [bucket.take(1.0) for _ in range(3)] == [True, True, False]
    assert bucket.wait(1.0) == pytest.approx(0.1)
    assert bucket.wait(1.04) == pytest.approx(0.06)  # asking spends nothing
    assert bucket.wait(1.2) == 0.0
    assert bucket.take(1.2)


def test_a_token_bucket_refuses_nonsense_limits() -> None:
    for rate, burst in ((0.0, 10.0), (10.0, 0.5)):
        try:
            TokenBucket(rate, burst)
        except ValueError:
            continue
        raise AssertionError(f"TokenBucket({rate}, {burst}) was accepted")


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
    tabs = Tabs()
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
    tabs = Tabs(stuck_after=5.0, clock=clock)
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


async def test_the_sweep_looks_only_at_tabs_with_a_send_under_way() -> None:
    """Idle tabs are never walked; a tab leaves the set when its sends are done or it closes,
    even when its sender was cancelled before it ever ran."""
    clock = Clock()
    tabs = Tabs(stuck_after=5.0, clock=clock)
    idle, done, blocked, closed = (RecordingSocket() for _ in range(4))
    blocked.gate.clear()
    tabs.open("idle", idle)
    tabs.open("done", done)
    blocked_tab = tabs.open("blocked", blocked)
    closed_tab = tabs.open("closed", closed)
    for user in ("done", "blocked", "closed"):
        tabs.deliver(user, "c1", "paint")
    closed_tab.close(1000, "bye")  # its sender has not run yet
    await done.wait(1)
    assert list(tabs.sending) == [blocked_tab]
    clock.now = 6.0
    assert tabs.sweep() == 1
    assert list(tabs.sending) == []
    assert tabs.count == 2


async def test_an_outbox_that_overflows_closes_the_tab() -> None:
    tabs = Tabs(queue_bytes=20)
    sock = RecordingSocket()
    sock.gate.clear()
    tab = tabs.open("1", sock)
    for call in ("c1", "c2", "c3", "c4"):
        tabs.deliver("1", call, "paint " + call)
    assert tab.closed
    assert tabs.count == 0


async def test_a_burst_of_40_calls_reaches_5_slow_but_reading_tabs() -> None:
    """Issue 9 item 6: 40 calls of one user at once, on 5 tabs whose sends are all blocked
    while the burst is queued (each call ends in a paint, or a clear when the user's call
    limit ended it): every tab gets every call, none is closed."""
    tabs = Tabs()
    socks = [RecordingSocket() for _ in range(5)]
    for sock in socks:
        sock.gate.clear()
        tabs.open("7", sock)
    reason = "Клиент другого менеджера в работе " * 4
    for n in range(40):
        tabs.deliver(
            "7",
            f"c{n}",
            wire.paint(f"c{n}", 1, Decision("red", "#d32f2f", "foreign-client-in-work", reason)),
        )
        if n >= 8:  # the per-user call limit ends the oldest call
            tabs.deliver("7", f"c{n - 8}", wire.clear(f"c{n - 8}"))
    assert tabs.count == 5
    for sock in socks:
        sock.gate.set()
    for sock in socks:
        await sock.wait(40)
        assert sock.closed is None
        seen = [frame.split('"call_id":"', 1)[1].split('"', 1)[0] for frame in sock.frames]
        assert sorted(seen) == sorted(f"c{n}" for n in range(40))


async def test_call_frames_beyond_the_rate_are_refused_per_tab() -> None:
    clock = Clock()
    tabs = Tabs(clock=clock, call_rate=3.0)
    first, second = tabs.open("1", RecordingSocket()), tabs.open("1", RecordingSocket())
    assert [first.may_call() for _ in range(4)] == [True, True, True, False]
    assert second.may_call()  # each tab has a budget of its own
    # Until its budget has a token again the tab is not read (backpressure), at most a second.
    assert first.call_wait() == pytest.approx(1 / 3)
    assert second.call_wait() == 0.0
    clock.now = 1.0
    assert first.may_call()
    assert not first.closed
    slow = Tabs(clock=clock, call_rate=0.001).open("2", RecordingSocket())
    assert [slow.may_call(), slow.may_call()] == [True, False]
    assert slow.call_wait() == MAX_CALL_WAIT


async def test_abuse_closes_with_1008() -> None:
    tabs = Tabs()
    sock = RecordingSocket()
    tab = tabs.open("1", sock)
    assert not any(tab.strike() for _ in range(7))
    assert tab.strike()
    assert tab.closed_by_gateway
    async with asyncio.timeout(timeout()):
        while sock.closed is None:
            sock.arrived.clear()
            await sock.arrived.wait()
    assert sock.closed[0] == CLOSE_ABUSE


async def test_one_tab_more_than_the_limit_closes_the_users_oldest_with_1008() -> None:
    tabs = Tabs(max_per_user=2)
    evicted: list[str] = []
    tabs.on_evict = evicted.append
    first, second, third, other = (RecordingSocket() for _ in range(4))
    tabs.open("1", first)
    tabs.open("1", second)
    tabs.open("2", other)
    newest = tabs.open("1", third)
    assert [tab.socket for tab in tabs.of("1")] == [second, third]
    assert (tabs.count, evicted) == (3, ["1"])
    async with asyncio.timeout(timeout()):
        while first.closed is None:
            first.arrived.clear()
            await first.arrived.wait()
    assert first.closed == (CLOSE_ABUSE, TOO_MANY_TABS)
    assert (second.closed, third.closed, other.closed, newest.closed) == (None, None, None, False)
    single = Tabs(max_per_user=1)  # the user's only tab goes, the user stays known
    single.open("1", RecordingSocket())
    single.open("1", RecordingSocket())
    assert (single.count, single.users) == (1, 1)


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
    # Not by the gateway: the receive loop counts the peer's close code when it comes.
    assert not tab.closed_by_gateway


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


class WritableSocket(RecordingSocket):
    """A socket whose server writes a frame at once while ``writable`` (gateway/run/tabsocket.py
    ``send_now``), and otherwise leaves it to the sender's ``send_text``."""

    def __init__(self) -> None:
        super().__init__()
        self.writable = True
        self.at_once = 0

    def send_now(self, data: str) -> bool:
        if not self.writable:
            return False
        self.frames.append(data)
        self.at_once += 1
        return True


async def test_a_frame_the_socket_takes_at_once_goes_without_a_sender() -> None:
    tabs = Tabs()
    socket = WritableSocket()
    tab = tabs.open("1", socket, socket.send_now)
    assert tabs.deliver("1", "c1", "paint") == 1
    assert socket.frames == ["paint"]  # written before anything was awaited
    assert (socket.at_once, tab in tabs.sending) == (1, False)


async def test_after_a_frame_that_had_to_wait_the_next_queue_behind_it_in_order() -> None:
    tabs = Tabs()
    socket = WritableSocket()
    tab = tabs.open("1", socket, socket.send_now)
    socket.writable = False
    socket.gate.clear()  # the sender's send blocks, as on a paused transport
    tab.push("c1", "p1")
    assert tab in tabs.sending
    socket.writable = True  # the socket could take one now, but p1 is still on its way
    tab.push("c2", "p2")
    assert (socket.frames, socket.at_once) == ([], 0)
    socket.gate.set()
    await socket.wait(2)
    assert socket.frames == ["p1", "p2"]
    assert tab not in tabs.sending  # drained: the next frame goes at once again
    tab.push("c3", "p3")
    assert (socket.frames[-1], socket.at_once) == ("p3", 1)


async def test_a_closed_tab_writes_nothing_at_once() -> None:
    tabs = Tabs()
    socket = WritableSocket()
    tab = tabs.open("1", socket, socket.send_now)
    tab.close(CLOSE_SLOW, "too slow")
    tab.push("c1", "p1")
    assert socket.frames == []
