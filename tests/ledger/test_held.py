"""Held marks (gateway/ledger/held.py): when they are due, when they are given up, and that
there are never more than the capacity."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.ledger.held import HeldMarks


def held(tries: int = 3, capacity: int = 10) -> tuple[HeldMarks, CollectorRegistry]:
    registry = CollectorRegistry()
    waiting = Gauge("waiting", "held", registry=registry)
    given_up = Counter("given_up", "given up", registry=registry)
    return HeldMarks(waiting, given_up, retry=60.0, tries=tries, capacity=capacity), registry


def figures(registry: CollectorRegistry) -> tuple[float | None, float | None]:
    return registry.get_sample_value("waiting"), registry.get_sample_value("given_up_total")


def test_a_mark_without_a_row_waits_longer_each_try_and_is_given_up_after_the_last() -> None:
    marks, registry = held(tries=3)
    end = ("2026-12-03 10:00:00.000000", "7", "c1")
    started = time.monotonic()
    marks.settle([end], [], ([end], []))
    first = marks.next_due()
    assert first is not None
    assert first >= started + 60.0
    assert marks.due() == ([], [])  # not yet
    assert marks.due(everything=True) == ([end], [])
    marks.settle([end], [], ([end], []))  # the second try found no row either
    second = marks.next_due()
    assert second is not None
    assert second >= started + 120.0
    assert figures(registry) == (1, 0)
    marks.settle([end], [], ([end], []))  # the third and last
    assert (len(marks), marks.next_due()) == (0, None)
    assert figures(registry) == (0, 1)


def test_a_mark_that_found_its_row_is_no_longer_held() -> None:
    marks, registry = held()
    latency = (85.0, "7", "c1")
    marks.settle([], [latency], ([], [latency]))
    assert marks.due(everything=True) == ([], [latency])
    marks.settle([], [latency])  # written (or dropped with a failed batch)
    assert len(marks) == 0
    assert figures(registry) == (0, 0)


def test_past_the_capacity_the_oldest_are_given_up_and_a_single_try_counts_too() -> None:
    marks, registry = held(capacity=2)
    ends = [("t", "7", f"c{i}") for i in range(3)]
    marks.settle(ends, [], (ends, []))
    assert marks.due(everything=True) == (ends[1:], [])
    assert figures(registry) == (2, 1)
    once, registry = held(tries=1)
    once.settle([ends[0]], [], ([ends[0]], []))
    assert (len(once), figures(registry)) == (0, (0, 1))
