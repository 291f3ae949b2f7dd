"""Recording decided calls without delaying a paint: a bounded queue drained by one background
writer that batches inserts (:class:`gateway.store.ledger.Ledger`), and retention.

``record``, ``ended`` and ``applied`` are what :class:`gateway.live.calls.Calls` calls: each
appends to the queue and returns. A full queue (``CALLGUARD_LEDGER_QUEUE``) drops the item and
counts it (``callguard_ledger_dropped{reason="full"}``); a batch the database refused is dropped
and counted too (``reason="error"``), with one warning per outage. Never the full number: a row
keeps the last 4 digits only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.live.call import Paint
from gateway.store.database import DatabaseError
from gateway.store.ledger import CallMark, Ledger, LedgerRow

log = logging.getLogger("callguard.ledger")

BATCH = 500  # rows per insert
# Calls arriving within this long share one transaction: written one by one, each call's row and
# marks cost the loop a transaction of their own (measured: p99 call->paint 2.3x the ledger-off
# figure at 300 calls/s). A flush does not wait.
GATHER = 0.25
PURGE_EVERY = 3600.0  # seconds between retention runs

_Item = tuple[Paint, float] | CallMark | asyncio.Future[None]


def row_of(paint: Paint, at: float) -> LedgerRow:
    """The ledger row of a paint made at ``at`` (``time.time()``)."""
    event, decision = paint.event, paint.decision
    subject, owner = decision.subject, decision.owner
    digits = [c for c in event.phone if c.isdigit()]
    return LedgerRow(
        time=datetime.fromtimestamp(at, UTC),
        call_id=event.call_id,
        caller_id=event.user_id,
        direction=event.direction,
        source=event.source,
        colour=decision.colour,
        rule=decision.rule,
        entity_type=subject.kind if subject else None,
        entity_id=subject.id if subject else None,
        entity_title=subject.title if subject else None,
        owner_id=owner.id if owner else None,
        owner_name=owner.name if owner else None,
        phone_last4="".join(digits[-4:]),
    )


class LedgerMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.recorded = Counter(
            "callguard_ledger_recorded", "Calls written to the ledger", registry=r
        )
        self.dropped = Counter(
            "callguard_ledger_dropped",
            "Ledger items not written: queue full (CALLGUARD_LEDGER_QUEUE) or database error",
            ["reason"],
            registry=r,
        )
        self.purged = Counter(
            "callguard_ledger_purged",
            "Ledger rows deleted as older than CALLGUARD_LEDGER_DAYS",
            registry=r,
        )
        self.queued = Gauge(
            "callguard_ledger_queue", "Ledger items waiting to be written", registry=r
        )


class LedgerWriter:
    def __init__(
        self,
        ledger: Ledger,
        *,
        capacity: int = 10_000,
        days: int = 365,
        purge_every: float | None = PURGE_EVERY,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.ledger = ledger
        self.capacity = capacity
        self.days = days
        self.purge_every = purge_every  # None: no retention in the background (tests)
        self.metrics = LedgerMetrics(registry)
        self.metrics.queued.set_function(lambda: len(self._queue))
        self._queue: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()  # a flush waits: write now
        self._tasks: list[asyncio.Task[None]] = []
        self._failing = False

    # -- the paint path: append and return ---------------------------------------------------

    def record(self, paint: Paint) -> None:
        self._put((paint, time.time()))

    def ended(self, user_id: str, call_id: str) -> None:
        self._put(CallMark(user_id, call_id, ended_at=datetime.now(UTC)))

    def applied(self, user_id: str, call_id: str, latency_ms: float | None) -> None:
        if latency_ms is not None:
            self._put(CallMark(user_id, call_id, latency_ms=latency_ms))

    def _put(self, item: _Item) -> None:
        if len(self._queue) >= self.capacity:
            self.metrics.dropped.labels("full").inc()
            return
        self._queue.append(item)
        self._wake.set()

    # -- the background ----------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run())]
        if self.purge_every is not None:
            self._tasks.append(loop.create_task(self._retain(self.purge_every)))

    async def flush(self) -> None:
        """Wait until everything queued before this call has been written (or dropped)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(done)
        self._wake.set()
        self._hurry.set()
        await done

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._tasks and not self._tasks[0].done():
            await self.flush()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def purge(self, now: datetime | None = None) -> int:
        """Delete rows older than ``days``; how many."""
        now = now or datetime.now(UTC)
        deleted = await self.ledger.purge(now - timedelta(days=self.days))
        self.metrics.purged.inc(deleted)
        return deleted

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if len(self._queue) < BATCH and not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), GATHER)
            self._hurry.clear()
            while self._queue:
                await self._write_batch()

    async def _write_batch(self) -> None:
        rows: dict[tuple[str, str], LedgerRow] = {}
        marks: list[CallMark] = []
        waiting: list[asyncio.Future[None]] = []
        while self._queue and len(rows) + len(marks) < BATCH:
            item = self._queue.popleft()
            if isinstance(item, asyncio.Future):
                waiting.append(item)
            elif isinstance(item, CallMark):
                marks.append(item)
            else:
                row = row_of(*item)
                key = (row.caller_id, row.call_id)
                first = rows.get(key)
                # One row per call in a batch: the latest decision, at the first paint's time.
                rows[key] = row if first is None else _redecided(first, row)
        try:
            if rows or marks:
                await self.ledger.write(list(rows.values()), marks)
                self.metrics.recorded.inc(len(rows))
            if self._failing:
                log.info("ledger writes work again")
                self._failing = False
        except DatabaseError as err:
            self.metrics.dropped.labels("error").inc(len(rows) + len(marks))
            if not self._failing:
                log.warning("ledger: %s; dropping calls until the database is back", err)
                self._failing = True
        except Exception:  # a bug must not stop the writer: the queue would only fill up
            self.metrics.dropped.labels("error").inc(len(rows) + len(marks))
            log.exception("ledger: a batch of %d calls could not be written", len(rows))
        finally:
            for future in waiting:
                if not future.done():
                    future.set_result(None)

    async def _retain(self, every: float) -> None:
        while True:
            try:
                await self.purge()
            except DatabaseError as err:
                log.warning("ledger retention: %s", err)
            await asyncio.sleep(every)


def _redecided(first: LedgerRow, later: LedgerRow) -> LedgerRow:
    return replace(later, time=first.time)
