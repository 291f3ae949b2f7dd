"""The pipeline with real directories (the data file, one that hangs, one that fails) and a
fanout that records what it would deliver."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from gateway.crm import Directory
from gateway.crm.cache import CachedDirectory
from gateway.crm.datafile import DataFileDirectory
from gateway.crm.dataset import load_dataset
from gateway.live.calls import FAILED_REASON, LATE_REASON, MAX_CALLS_PER_USER, Calls
from gateway.live.wire import AppliedFrame
from gateway.run.metrics import Metrics
from rules import Findings, InvalidPhone, load_policy
from tests.live.conftest import OWNER, RED_CALLER, RED_PHONE, FailingDirectory, HangingDirectory
from tests.timing import timeout


class RecordingFanout:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None, dict[str, object]]] = []
        self.changed = asyncio.Event()

    async def publish(self, user_id: str, key: str | None, frame: str) -> None:
        self.sent.append((user_id, key, orjson.loads(frame)))
        self.changed.set()

    async def close(self) -> None:
        return None

    async def wait(self, count: int) -> list[dict[str, object]]:
        async with asyncio.timeout(timeout()):
            while len(self.sent) < count:
                self.changed.clear()
                await self.changed.wait()
        return [frame for _, _, frame in self.sent]


def make_calls(
    directory: Directory | None = None, *, deadline: float = 1.0, call_timeout: float = 60.0
) -> tuple[Calls, RecordingFanout]:
    fanout = RecordingFanout()
    # As the gateway has it: every directory behind the cache, which shares concurrent lookups.
    calls = Calls(
        CachedDirectory(directory or DataFileDirectory(load_dataset())),
        load_policy(),
        fanout,
        Metrics(),
        region="RU",
        lookup_deadline=deadline,
        call_timeout=call_timeout,
    )
    return calls, fanout


async def test_a_call_is_decided_and_painted_for_the_caller() -> None:
    calls, fanout = make_calls()
    paint = await calls.start_call(RED_CALLER, "c1", RED_PHONE, "in")
    assert paint is not None
    assert paint.seq == 1
    assert paint.decision.colour == "red"
    user, key, frame = fanout.sent[0]
    assert (user, key) == (RED_CALLER, "c1")
    assert frame["type"] == "paint"
    assert frame["colour"] == "red"
    assert frame["background"] == "#d32f2f"
    assert calls.current_frames(RED_CALLER) == [("c1", paint.frame)]
    assert calls.current_frames(OWNER) == []
    await calls.close()


async def test_the_same_call_reported_again_keeps_its_paint() -> None:
    calls, fanout = make_calls()
    first = await calls.start_call(RED_CALLER, "c1", RED_PHONE)
    again = await calls.start_call(RED_CALLER, "c1", "8 495 123-45-67", only_if_unpainted=True)
    assert again is first
    assert len(fanout.sent) == 1
    repainted = await calls.start_call(RED_CALLER, "c1", RED_PHONE)
    assert repainted is not None
    assert repainted.seq == 2
    await calls.close()


async def test_ending_a_call_pushes_clear_once() -> None:
    calls, fanout = make_calls()
    await calls.start_call(RED_CALLER, "c1", RED_PHONE)
    assert await calls.end_call(RED_CALLER, "c1")
    assert not await calls.end_call(RED_CALLER, "c1")
    assert fanout.sent[-1] == (RED_CALLER, "c1", {"type": "clear", "call_id": "c1"})
    assert calls.active == 0
    await calls.close()


async def test_a_call_that_times_out_is_cleared() -> None:
    calls, fanout = make_calls(call_timeout=0.05)
    await calls.start_call(RED_CALLER, "c1", RED_PHONE)
    frames = await fanout.wait(2)
    assert frames[-1] == {"type": "clear", "call_id": "c1"}
    assert calls.active == 0
    await calls.close()


async def test_a_user_has_a_bounded_number_of_calls() -> None:
    calls, fanout = make_calls()
    for i in range(MAX_CALLS_PER_USER + 1):
        await calls.start_call(RED_CALLER, f"c{i}", RED_PHONE)
    assert calls.active == MAX_CALLS_PER_USER
    assert {"type": "clear", "call_id": "c0"} in [f for _, _, f in fanout.sent]
    await calls.close()


async def test_an_invalid_phone_is_refused_before_anything_happens() -> None:
    calls, fanout = make_calls()
    with pytest.raises(InvalidPhone):
        await calls.start_call(RED_CALLER, "c1", "call me maybe")
    with pytest.raises(InvalidPhone):
        await calls.submit(RED_CALLER, "c1", "12")
    assert fanout.sent == []
    assert calls.active == 0
    await calls.close()


async def test_submit_paints_a_warm_number_at_once_and_a_cold_one_in_the_background() -> None:
    calls, fanout = make_calls()
    await calls.submit(RED_CALLER, "cold", RED_PHONE, source="ws")
    assert fanout.sent == []  # the lookup runs in a task of its own: the caller goes on
    await calls.idle()
    await calls.submit(RED_CALLER, "warm", RED_PHONE, source="ws")
    assert [(key, frame["colour"]) for _, key, frame in fanout.sent] == [
        ("cold", "red"),
        ("warm", "red"),
    ]
    await calls.close()


async def test_a_hanging_crm_paints_none_at_the_deadline_and_the_lookup_still_finishes() -> None:
    directory = HangingDirectory()
    calls, fanout = make_calls(directory, deadline=0.05)
    paint = await calls.start_call(RED_CALLER, "c1", RED_PHONE)
    assert paint is not None
    assert (paint.decision.colour, paint.decision.reason) == ("none", LATE_REASON)
    assert fanout.sent[0][2]["text"] == LATE_REASON
    assert directory.started == 1
    directory.release()
    async with asyncio.timeout(timeout()):
        await directory.event("finished").wait()
    await calls.close()


async def test_concurrent_calls_for_one_number_share_one_lookup() -> None:
    directory = HangingDirectory()
    calls, _ = make_calls(directory, deadline=timeout())
    pending = [
        asyncio.ensure_future(calls.start_call(str(u), f"c{u}", RED_PHONE)) for u in range(5, 10)
    ]
    calls.prewarm(RED_PHONE)
    await asyncio.sleep(0)
    directory.release()
    paints = await asyncio.gather(*pending)
    assert directory.started == 1
    assert all(p is not None for p in paints)
    await calls.close()


async def test_a_failing_crm_paints_none_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory = FailingDirectory()
    calls, _ = make_calls(directory)
    with caplog.at_level(logging.WARNING, logger="callguard.directory"):
        paints = await asyncio.gather(
            *(calls.start_call(str(u), "c1", RED_PHONE) for u in range(5, 8))
        )
    assert all(p is not None and p.decision.reason == FAILED_REASON for p in paints)
    assert directory.calls == 1
    lines = [r for r in caplog.records if r.name == "callguard.directory"]
    assert len(lines) == 1
    assert "500 INTERNAL_SERVER_ERROR" in lines[0].getMessage()
    assert "495" not in lines[0].getMessage()
    assert "****4567" in lines[0].getMessage()
    await calls.close()


async def test_a_crm_that_crashes_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BrokenDirectory(FailingDirectory):
        async def lookup(self, phone: str) -> Findings:
            raise KeyError("bug")

    calls, _ = make_calls(BrokenDirectory())
    with caplog.at_level(logging.ERROR, logger="callguard.directory"):
        paint = await calls.start_call(RED_CALLER, "c1", RED_PHONE)
    assert paint is not None
    assert paint.decision.reason == FAILED_REASON
    logged = [r.exc_info is not None for r in caplog.records if r.name == "callguard.directory"]
    assert logged == [True]
    await calls.close()


async def test_a_call_ended_during_its_lookup_is_not_painted() -> None:
    directory = HangingDirectory()
    calls, fanout = make_calls(directory, deadline=timeout())
    pending = asyncio.ensure_future(calls.start_call(RED_CALLER, "c1", RED_PHONE))
    async with asyncio.timeout(timeout()):
        await directory.event("started").wait()
    await calls.end_call(RED_CALLER, "c1")
    directory.release()
    assert await pending is None
    assert [f["type"] for _, _, f in fanout.sent] == ["clear"]
    await calls.close()


async def test_redecide_paints_current_calls_again() -> None:
    calls, fanout = make_calls()
    await calls.start_call(RED_CALLER, "c1", RED_PHONE)
    await calls.start_call(OWNER, "c2", "8 916 000-11-22")
    assert await calls.redecide(RED_PHONE) == 1
    assert await calls.redecide() == 2
    seqs = [(f["call_id"], f["seq"]) for _, _, f in fanout.sent]
    assert seqs == [("c1", 1), ("c2", 1), ("c1", 2), ("c1", 3), ("c2", 2)]
    await calls.close()


async def test_applied_latency_is_recorded() -> None:
    calls, _ = make_calls()
    calls.applied(RED_CALLER, AppliedFrame("c1", 1, 42.0))
    calls.applied(RED_CALLER, AppliedFrame("c1", 1, None))
    text = calls.metrics.render().decode()
    assert "callguard_ring_to_applied_seconds_count 1.0" in text
    await calls.close()


async def test_a_warm_number_is_decided_once_per_caller_until_it_changes() -> None:
    calls, _ = make_calls()
    first = await calls.start_call(RED_CALLER, "c1", RED_PHONE)
    again = await calls.start_call(RED_CALLER, "c2", RED_PHONE)
    owner = await calls.start_call(OWNER, "c3", RED_PHONE)
    assert first is not None
    assert again is not None
    assert owner is not None
    assert again.decision is first.decision  # remembered: the same findings, the same caller
    assert owner.decision.colour != first.decision.colour  # another caller is decided anew
    await calls.directory.changed("company", "10", False)  # type: ignore[attr-defined]
    fresh = await calls.start_call(RED_CALLER, "c4", RED_PHONE)
    assert fresh is not None
    assert fresh.decision is not first.decision  # new findings after the change
    assert fresh.decision == first.decision
    await calls.close()
