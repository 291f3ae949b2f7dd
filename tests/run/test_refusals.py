"""Refusals: every one counted, the log at most one line per reason per window."""

from __future__ import annotations

import asyncio
import logging

from gateway.run.metrics import Metrics
from gateway.run.refusals import RefusalLog, Refusals
from tests.timing import timeout


def test_the_first_refusal_is_logged_at_once_the_rest_once_per_window() -> None:
    log = RefusalLog(every=60.0)
    assert log.note("max_connections", now=0.0) == 1
    assert [log.note("max_connections", now=t) for t in (1.0, 2.0, 59.0)] == [0, 0, 0]
    assert log.note("header_timeout", now=30.0) == 1  # each reason has its own window
    assert log.next_due(now=30.0) == 30.0
    assert log.due(now=59.9) == []
    assert log.due(now=60.0) == [("max_connections", 3)]
    assert log.next_due(now=60.0) is None
    assert log.note("max_connections", now=61.0) == 0  # a new window began at 60
    assert log.note("max_connections", now=200.0) == 2  # one pending, and this one
    assert log.flush() == []


def test_a_flush_reports_what_is_still_pending() -> None:
    log = RefusalLog(every=60.0)
    log.note("unread_output", 0.0)
    log.note("unread_output", 1.0)
    log.note("too_many_tabs", 2.0)
    log.note("too_many_tabs", 3.0)
    assert sorted(log.flush()) == [("too_many_tabs", 1), ("unread_output", 1)]


def count(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "callguard_connections_refused_total", {"reason": reason}
    )
    return value or 0.0


class Lines(logging.Handler):
    """The log lines of one logger, with an event for each new one."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.changed.set()

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(timeout()):
            while len(self.lines) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_a_flood_of_refusals_is_every_one_counted_and_two_lines_logged() -> None:
    metrics = Metrics()
    refusals = Refusals(metrics, every=0.05)
    lines = Lines()
    logger = logging.getLogger("callguard.limits")
    logger.addHandler(lines)
    try:
        for _ in range(1000):
            refusals.refuse("max_connections", "192.0.2.1")
        assert count(metrics, "max_connections") == 1000
        assert len(lines.lines) == 1
        assert lines.lines[0].startswith(
            "1 connections refused at once: CALLGUARD_MAX_CONNECTIONS were open (latest: 192.0.2.1)"
        )
        await lines.wait(2)  # the window's end writes the rest in one line
        assert lines.lines[1].startswith("999 connections refused at once")
        refusals.close()
        assert len(lines.lines) == 2
    finally:
        logger.removeHandler(lines)
