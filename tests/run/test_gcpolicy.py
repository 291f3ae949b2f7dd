"""The GC policy against the real collector (restored afterwards: the freeze is process-wide)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gateway.live.tabs import Tabs
from gateway.run.gcpolicy import GcPolicy, peak_rss_kb
from tests.live.test_tabs import Clock, RecordingSocket


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    try:
        yield
    finally:
        gc.unfreeze()


class Memory:
    def __init__(self) -> None:
        self.kb = 100_000

    def __call__(self) -> int:
        return self.kb


def policy_for(
    tabs: Tabs, clock: Clock, memory: Memory | None = None, **options: float
) -> GcPolicy:
    last_call = options.pop("last_call", 0.0)
    return GcPolicy(
        tabs,
        lambda: last_call,
        clock=clock,
        memory=memory or Memory(),
        **options,  # type: ignore[arg-type]
    )


def test_start_up_freezes_what_lives_and_each_tick_freezes_the_survivors() -> None:
    policy = policy_for(Tabs(), Clock())
    policy.after_startup()
    assert gc.get_freeze_count() > 0
    survivor = [object() for _ in range(10)]
    assert gc.is_tracked(survivor)
    before = gc.get_freeze_count()
    policy.tick()
    assert policy.freezes == 1
    assert gc.get_freeze_count() > before
    assert gc.get_count()[0] <= 1


def test_churn_is_compacted_when_calls_and_connections_are_quiet() -> None:
    tabs, clock = Tabs(), Clock()
    policy = policy_for(tabs, clock, compact_after=4, quiet_for=2.0, last_call=9.5)
    policy.after_startup()
    for _ in range(2):
        tabs.remove(tabs.open("1", RecordingSocket()))
    assert policy.churn == 4
    clock.now = 1.0
    policy.tick()  # tabs just opened: a connection storm may be going on
    clock.now = 10.0  # and a call half a second ago
    policy.tick()
    assert policy.compactions == 0
    clock.now = 12.0
    policy.tick()
    assert policy.compactions == 1
    assert policy.churn == 0
    assert gc.get_freeze_count() > 0


def test_endless_calls_do_not_postpone_compaction_forever() -> None:
    tabs, clock = Tabs(), Clock()
    policy = policy_for(tabs, clock, compact_after=2, force_ratio=4.0, last_call=1e9)
    policy.after_startup()
    for _ in range(4):
        tabs.remove(tabs.open("1", RecordingSocket()))
    policy.tick()  # churn 8 = 4 x compact_after: not beyond the bound yet
    assert policy.compactions == 0
    tabs.open("1", RecordingSocket())
    policy.tick()
    assert policy.compactions == 1


def test_memory_growth_triggers_a_compaction_too() -> None:
    memory, clock = Memory(), Clock()
    policy = policy_for(Tabs(), clock, memory, last_call=0.0)
    policy.after_startup()
    clock.now = 10.0
    memory.kb = 120_000
    policy.tick()
    assert policy.compactions == 0
    memory.kb = 130_000
    policy.tick()
    assert policy.compactions == 1


def test_peak_memory_is_read_from_the_process() -> None:
    assert peak_rss_kb() > 0
