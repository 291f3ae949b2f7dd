"""The loop's lag probe: a stall the loop caused is its own; time the thread waited, ready, for a
CPU another process held is told apart (Linux schedstat), so a benchmark on a shared machine can
name the gateway's stalls."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import Iterator

import pytest

from gateway.run.metrics import Metrics
from gateway.run.probes import GcProbe, LagProbe
from tests.timing import timeout

SPIN = 0.2  # seconds a callback holds the loop

needs_schedstat = pytest.mark.skipif(
    not os.path.exists("/proc/thread-self/schedstat") or not hasattr(os, "sched_setaffinity"),
    reason="needs Linux's per-thread schedstat and CPU affinity",
)


def hold_the_loop(seconds: float) -> None:
    """A callback that keeps the loop's thread busy, as a slow piece of code would."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@pytest.fixture
def one_cpu() -> Iterator[int]:
    """This thread (the loop's) on one CPU only, given back afterwards."""
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


async def stalled(probe: LagProbe) -> None:
    probe.start()
    try:
        await asyncio.sleep(0)  # the probe's first sleep begins
        asyncio.get_running_loop().call_soon(hold_the_loop, SPIN)
        async with asyncio.timeout(timeout()):
            # The probe has no event to wait on: it is read until it saw the stall.
            while probe.worst < SPIN * 0.9:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        await probe.stop()


@needs_schedstat
async def test_a_callback_holding_the_loop_is_the_loops_own_stall(one_cpu: int) -> None:
    probe = LagProbe(Metrics(), interval=0.005)
    await stalled(probe)
    assert probe.worst >= SPIN * 0.9
    assert 0.0 < probe.worst_own <= probe.worst


@needs_schedstat
async def test_waiting_for_a_cpu_another_process_holds_is_not_the_loops_own(one_cpu: int) -> None:
    """A spinning process on the loop's only CPU: the scheduler shares the CPU between the two,
    so a good part of the stall was spent waiting, and that part is not counted as our own."""
    spinner = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "while True: pass",
        preexec_fn=lambda: os.sched_setaffinity(0, {one_cpu}),
    )
    try:
        probe = LagProbe(Metrics(), interval=0.005)
        await stalled(probe)
    finally:
        spinner.kill()
        await spinner.wait()
    # A fair scheduler gives each of two busy tasks about half of the CPU; a tenth is the bound.
    assert probe.worst - probe.worst_own >= SPIN * 0.1
    assert 0.0 < probe.worst_own <= probe.worst


@needs_schedstat
def test_a_collection_is_timed_and_its_own_part_kept() -> None:
    probe = GcProbe(Metrics())
    probe.start()
    try:
        garbage = [[n] for n in range(200_000)]  # enough objects for the collection to take time
        gc.collect()
        del garbage
    finally:
        probe.stop()
    assert probe.collections >= 1
    assert (probe.worst_generation, probe.worst > 0.0) == (2, True)
    assert 0.0 < probe.worst_own <= probe.worst
