"""Recording decided calls without delaying a paint: the paint path appends a small tuple to a
bounded queue; a thread of its own turns the queue into rows and writes them in batches on a
connection of its own (:mod:`gateway.store.ledger_sink`), and runs retention.

``record``, ``ended`` and ``applied`` are what :class:`gateway.live.calls.Calls` calls, on the
event loop: each appends ``(kind, ..., time.time())`` and returns; no row, no datetime, no SQL
there. A full queue (``CALLGUARD_LEDGER_QUEUE``) drops the item and counts it
(``callguard_ledger_dropped{reason="full"}``); a batch the database refused is dropped and
counted too (``reason="error"``), with one warning per outage. Never the full number: a row
keeps the last 4 digits only. A call's end or latency that found no row of its call (another
process painted it and has not written it yet) is held and tried again with later batches
(:mod:`gateway.ledger.held`).

The loop talks to the thread through the queue as well: ``flush``, ``purge`` and ``stop`` queue
a request behind everything recorded before it and await its answer, so ``stop`` (a graceful
shutdown) writes all that was queued before it returns.

The thread still needs the GIL for its Python work; it keeps that small (a tuple per call,
``executemany`` per kind of statement) and, while it builds a batch, may pause every ``CHUNK``
items (as the sink does while it writes one: :data:`gateway.store.ledger_sink.HOLD`), so the
loop never waits behind a whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.ledger import held
from gateway.live.call import Paint
from gateway.store.database import Database, DatabaseError
from gateway.store.ledger_sink import (
    CHUNK,
    Applied,
    Ended,
    LedgerSink,
    Row,
    open_sink,
    pause,
    resume,
)

log = logging.getLogger("callguard.ledger")

BATCH = 500  # rows and marks per transaction at most
# Calls arriving within this long share one transaction: written one by one, each call's row and
# marks would cost a transaction of their own. A flush does not wait.
GATHER = 0.25
PURGE_EVERY = 3600.0  # seconds between retention runs

# What the queue holds, by its first element: (PAINT, paint, at), (ENDED, user, call, at),
# (APPLIED, user, call, ms); the loop's requests (kind, future, loop, argument).
PAINT, ENDED, APPLIED = 0, 1, 2
FLUSH, PURGE, STOP = 3, 4, 5
_Item = tuple[Any, ...]


def row_of(paint: Paint, at: Any) -> Row:
    """The ledger row of a paint made at ``at`` (the sink's stamp), in the order of the sink's
    ``COLUMNS``."""
    event, decision = paint.event, paint.decision
    subject, owner = decision.subject, decision.owner
    digits = [c for c in event.phone if c.isdigit()]
    return (
        at,
        event.call_id,
        event.user_id,
        event.direction,
        event.source,
        decision.colour,
        decision.rule,
        subject.kind if subject else None,
        subject.id if subject else None,
        subject.title if subject else None,
        owner.id if owner else None,
        owner.name if owner else None,
        "".join(digits[-4:]),
        None,  # ended_at: a mark
        None,  # latency_ms: a mark
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
        self.waiting = Gauge(
            "callguard_ledger_marks_waiting",
            "Call ends and latencies waiting for their call's row (another process writes it)",
            registry=r,
        )


class LedgerWriter:
    def __init__(
        self,
        database: Database,
        *,
        capacity: int = 10_000,
        days: int = 365,
        purge_every: float | None = PURGE_EVERY,
        registry: CollectorRegistry | None = None,
        mark_retry: float = held.RETRY,
        mark_tries: int = held.TRIES,
    ) -> None:
        self.database = database
        self.capacity = capacity
        self.days = days
        self.purge_every = purge_every  # None: no retention in the background (tests)
        self.metrics = LedgerMetrics(registry)
        self.metrics.queued.set_function(lambda: len(self._queue))
        self._full = self.metrics.dropped.labels("full")  # bound once: .labels() takes a lock
        # deque: append and popleft are atomic, so the loop and the thread share it unlocked.
        self._queue: deque[_Item] = deque()
        self._wake = threading.Event()
        self._hurry = threading.Event()  # a request waits: write now
        self._thread: threading.Thread | None = None
        self._failing = False  # the thread's: whether the last batch failed
        # The thread's: marks that found no row of their call yet (gateway/ledger/held.py).
        self._held = held.HeldMarks(
            self.metrics.waiting,
            self.metrics.dropped.labels("no_row"),
            retry=mark_retry,
            tries=mark_tries,
            capacity=capacity,
        )

    # -- the paint path (the event loop): append and return ----------------------------------

    def record(self, paint: Paint) -> None:
        self._put((PAINT, paint, time.time()))

    def ended(self, user_id: str, call_id: str) -> None:
        self._put((ENDED, user_id, call_id, time.time()))

    def applied(self, user_id: str, call_id: str, latency_ms: float | None) -> None:
        if latency_ms is not None:
            self._put((APPLIED, user_id, call_id, latency_ms))

    def _put(self, item: _Item) -> None:
        if len(self._queue) >= self.capacity:
            self._full.inc()
            return
        self._queue.append(item)
        # Set only when clear: the thread clears it before it drains, so nothing is missed.
        if not self._wake.is_set():
            self._wake.set()

    # -- the loop's requests -----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="callguard-ledger", daemon=True)
        self._thread.start()

    async def flush(self) -> None:
        """Wait until everything queued before this call has been written (or dropped)."""
        await self._ask(FLUSH)

    async def purge(self, now: datetime | None = None) -> int:
        """Delete rows older than ``days`` (after writing what is queued); how many."""
        before = (now or datetime.now(UTC)) - timedelta(days=self.days)
        deleted: int = await self._ask(PURGE, before)
        return deleted

    async def stop(self) -> None:
        """Write what is queued, close the connection, end the thread."""
        thread = self._thread
        if thread is None:
            return
        if thread.is_alive():
            await self._ask(STOP)
        thread.join()  # it answered as its last act: this returns at once
        self._thread = None

    async def _ask(self, kind: int, argument: object = None) -> Any:
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the ledger writer is not running")
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        # Past the capacity: requests are few, and one must never be dropped.
        self._queue.append((kind, answer, loop, argument))
        self._hurry.set()
        self._wake.set()
        return await answer

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        sink = open_sink(self.database)
        stop: _Item | None = None
        due = time.monotonic() if self.purge_every is not None else None
        try:
            while stop is None:
                self._wake.wait(self._sleep(due))
                self._wake.clear()
                if due is not None and self.purge_every is not None and time.monotonic() >= due:
                    self._retain(sink)  # first thing after start: before any request is answered
                    due = time.monotonic() + self.purge_every
                if self._queue and len(self._queue) < BATCH and not self._hurry.is_set():
                    self._hurry.wait(GATHER)
                self._hurry.clear()
                while (self._queue or any(self._held.due())) and stop is None:
                    stop = self._write_batch(sink)
            # Stopping: the held marks once more, whenever they were due; the rest given up.
            self._store(sink, [], *self._held.due(everything=True))
            self._held.give_up()
        except Exception:  # a bug: say so, and let nobody wait for this thread
            log.exception("ledger: the writer stopped; calls are no longer recorded")
            self._held.give_up()
        finally:
            sink.close()
            # Whoever still waits must not wait forever: the STOP answered, any other refused.
            for item in [stop, *self._queue]:
                if item is not None and item[0] >= FLUSH:
                    gone = None if item is stop else RuntimeError("the ledger writer stopped")
                    _answer(item, None, gone)

    def _write_batch(self, sink: LedgerSink) -> _Item | None:
        """Write up to BATCH items, or those before the first request, then answer it; the
        STOP request is returned unanswered."""
        rows: dict[tuple[str, str], Row] = {}
        # First the marks that found no row before, and are due: it may be there by now.
        ended, applied = self._held.due()
        request: _Item | None = None
        taken = 0
        resume()
        while self._queue and taken < BATCH:
            item = self._queue.popleft()
            kind = item[0]
            taken += 1
            if kind == PAINT:
                row = row_of(item[1], sink.stamp_at(item[2]))
                key = (row[2], row[1])
                first = rows.get(key)
                # One row per call in a batch: the latest decision, at the first paint's time,
                # with the marks already folded into it.
                rows[key] = row if first is None else (first[0], *row[1:-2], *first[-2:])
            # A mark of a call whose row is in this batch goes into the row: the tab's applied
            # follows its paint within milliseconds, and a short call's end within the batch;
            # an UPDATE each would double the writer's work a call (bench/ledger_cost.py).
            elif kind == ENDED:
                at = sink.stamp_at(item[3])
                held = rows.get((item[1], item[2]))
                if held is not None:
                    rows[item[1], item[2]] = (*held[:-2], at, held[-1])
                else:
                    ended.append((at, item[1], item[2]))
            elif kind == APPLIED:
                held = rows.get((item[1], item[2]))
                if held is None:
                    applied.append((item[3], item[1], item[2]))
                elif held[-1] is None:  # the first applied paint is the latency, as in the UPDATE
                    rows[item[1], item[2]] = (*held[:-1], item[3])
            else:
                request = item
                break
            if taken % CHUNK == 0:
                pause()  # a few microseconds of Python per item: let a waiting loop in
        self._store(sink, list(rows.values()), ended, applied)
        if request is None or request[0] == STOP:
            return request
        if request[0] == PURGE:
            try:
                _answer(request, self._purge(sink, request[3]))
            except Exception as err:
                _answer(request, None, err)
        else:
            _answer(request, None)
        return None

    def _store(
        self, sink: LedgerSink, rows: list[Row], ended: list[Ended], applied: list[Applied]
    ) -> None:
        count = len(rows) + len(ended) + len(applied)
        if not count:
            return
        try:
            unmatched = sink.write(rows, ended, applied)
            self.metrics.recorded.inc(len(rows))
            self._held.settle(ended, applied, unmatched)
            if self._failing:
                log.info("ledger writes work again")
                self._failing = False
        except DatabaseError as err:
            self._held.settle(ended, applied)  # dropped with the batch, held ones too
            self.metrics.dropped.labels("error").inc(count)
            if not self._failing:
                log.warning("ledger: %s; dropping calls until the database is back", err)
                self._failing = True
        except Exception:  # a bug must not stop the writer: the queue would only fill up
            self._held.settle(ended, applied)
            self.metrics.dropped.labels("error").inc(count)
            log.exception("ledger: a batch of %d calls could not be written", len(rows))

    def _sleep(self, purge_due: float | None) -> float | None:
        """How long the thread may wait for work: until retention or a held mark is due."""
        dues = [d for d in (self._held.next_due(), purge_due) if d is not None]
        return max(0.0, min(dues) - time.monotonic()) if dues else None

    def _purge(self, sink: LedgerSink, before: datetime) -> int:
        deleted = sink.purge(before)
        self.metrics.purged.inc(deleted)
        return deleted

    def _retain(self, sink: LedgerSink) -> None:
        try:
            self._purge(sink, datetime.now(UTC) - timedelta(days=self.days))
        except DatabaseError as err:
            log.warning("ledger retention: %s", err)
        except Exception:  # a bug must not stop the writer: calls would no longer be recorded
            log.exception("ledger retention failed")


def _answer(request: _Item, result: object, error: BaseException | None = None) -> None:
    """Settle a request's future on its loop (from the writer's thread)."""
    _, future, loop, _ = request

    def settle() -> None:
        if future.done():  # the waiter was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(settle)
