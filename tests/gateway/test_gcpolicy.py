"""The GC policy against the real collector (restored afterwards: the freeze is process-wide)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gateway.gcpolicy import GEN0_THRESHOLD, GcPolicy
from gateway.tabs import Tabs
from tests.gateway.test_tabs import Clock, RecordingSocket


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def test_start_up_freezes_what_lives_and_new_tabs_get_frozen_in_batches() -> None:
    tabs = Tabs()
    clock = Clock()
    policy = GcPolicy(tabs, lambda: 0.0, refreeze_after=3, compact_after=100, clock=clock)
    policy.after_startup()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == GEN0_THRESHOLD
    for _ in range(2):
        tabs.open("1", RecordingSocket())
    policy.tick()
    assert policy.freezes == 0
    tabs.open("1", RecordingSocket())
    policy.tick()
    assert policy.freezes == 1


async def test_churn_is_compacted_only_when_calls_are_quiet() -> None:
    tabs = Tabs()
    clock = Clock()
    last_call = [0.0]
    policy = GcPolicy(
        tabs, lambda: last_call[0], refreeze_after=1000, compact_after=2, quiet_for=2.0, clock=clock
    )
    policy.after_startup()
    for _ in range(2):
        tabs.remove(tabs.open("1", RecordingSocket()))
    clock.now, last_call[0] = 10.0, 9.5  # a call half a second ago: not now
    policy.tick()
    assert policy.compactions == 0
    clock.now = 12.0
    policy.tick()
    assert policy.compactions == 1
    assert gc.get_freeze_count() > 0
