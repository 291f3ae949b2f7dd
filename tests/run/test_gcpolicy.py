"""The GC policy against the real collector (restored afterwards: the freeze is process-wide),
and the server's part in it: a tab's connection leaves no cyclic garbage for a full pass."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import httpx
import pytest
import websockets

from gateway.live.tokens import issue_token
from gateway.run.gcpolicy import GcPolicy
from gateway.web.app import create_app
from tests.support import TEST_SECRET, gateway_settings, running_app, running_gateway
from tests.timing import timeout


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.unfreeze()


def test_start_up_freezes_what_lives_and_each_tick_freezes_the_survivors() -> None:
    policy = GcPolicy()
    policy.after_startup()
    assert gc.get_freeze_count() > 0
    survivor = [object() for _ in range(10)]
    assert gc.is_tracked(survivor)
    before = gc.get_freeze_count()
    policy.tick()
    assert policy.freezes == 1
    assert gc.get_freeze_count() > before
    assert gc.get_count()[0] <= 1


def test_the_policy_never_runs_a_full_collection() -> None:
    # A full pass over thousands of tabs is the stall the policy exists to avoid: ticks only
    # ever collect the young generations, however long the process runs.
    policy = GcPolicy()
    policy.after_startup()
    full_passes: list[int] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            full_passes.append(1)

    gc.callbacks.append(watch)
    try:
        for _ in range(50):
            _ = [[object()] for _ in range(200)]
            policy.tick()
    finally:
        gc.callbacks.remove(watch)
    assert full_passes == []
    assert policy.freezes == 50


async def test_a_websocket_connection_leaves_no_cycle_behind() -> None:
    """uvicorn's HTTP protocol object, done after the upgrade, used to stay in a cycle with its
    parser; with the policy's freezing that garbage was never reclaimed (17 objects a tab)."""
    async with running_gateway() as url:
        base = url.replace("http://", "ws://")
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        for user in range(20):
            token = issue_token(TEST_SECRET, str(100 + user))
            async with websockets.connect(f"{base}/ws?token={token}", compression=None) as ws:
                async with asyncio.timeout(timeout()):
                    assert '"hello"' in str(await ws.recv())
        gc.collect()
        left = {type(o).__qualname__ for o in gc.garbage}
        assert "HttpToolsProtocol" not in left
        assert "HttpRequestParser" not in left


async def test_a_scrape_does_not_count_the_frozen_set() -> None:
    # Counting walks every frozen object with the GIL held: 355 ms at 19,500 tabs, a stall per
    # scrape. The gauge is the count at start-up; objects frozen later do not move it.
    settings = gateway_settings()
    async with running_app(create_app(settings), settings, tune_gc=True) as base:
        at_start = await frozen_gauge(base)
        assert at_start > 0
        held = [[i] for i in range(50_000)]
        gc.freeze()
        assert gc.get_freeze_count() >= at_start + len(held)
        assert await frozen_gauge(base) == at_start


async def frozen_gauge(base: str) -> float:
    async with httpx.AsyncClient() as client, asyncio.timeout(timeout()):
        text = (await client.get(base + "/metrics")).text
    (line,) = [x for x in text.splitlines() if x.startswith("callguard_gc_frozen_objects ")]
    return float(line.split()[1])
