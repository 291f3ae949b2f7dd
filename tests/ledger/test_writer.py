"""The pipeline records decided calls through the ledger writer's thread, on a real SQLite file
and on the real PostgreSQL server: the paint first, the row after; a full queue drops and counts;
a locked or lost database never holds a paint; stopping writes what was queued; no full number
is kept."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from gateway.ledger.writer import LedgerWriter
from gateway.live.calls import Calls
from gateway.live.wire import AppliedFrame
from gateway.store.database import Database
from gateway.store.ledger import Ledger
from gateway.store.url import sqlite_file
from tests.live.conftest import OWNER, RED_CALLER, RED_PHONE
from tests.live.test_calls import RecordingFanout, make_calls
from tests.store.test_ledger import row
from tests.timing import timeout

WIDE = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


async def open_ledger(
    url: str, wait: float = 5.0, registry: CollectorRegistry | None = None
) -> Ledger:
    db = Database(url, timeout=wait, registry=registry)
    await db.open()
    return Ledger(db)


@contextlib.asynccontextmanager
async def locked(url: str) -> AsyncIterator[None]:
    """The ledger's table write-locked by another connection (another process, a long
    migration) until the block ends."""
    file = sqlite_file(url)
    if file is not None:
        other = sqlite3.connect(file, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE call_ledger IN EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def recording(
    ledger: Ledger,
    registry: CollectorRegistry,
    *,
    start: bool = True,
    capacity: int = 10_000,
    days: int = 365,
) -> AsyncIterator[tuple[LedgerWriter, Calls, RecordingFanout]]:
    """The pipeline recording into ``ledger`` through a writer (started unless told not to);
    the writer stopped and the ledger's database closed at the end."""
    writer = LedgerWriter(
        ledger.database, capacity=capacity, days=days, purge_every=None, registry=registry
    )
    calls, fanout = make_calls()
    calls.ledger = writer
    if start:
        writer.start()
    try:
        yield writer, calls, fanout
    finally:
        await writer.stop()
        await calls.close()
        await ledger.database.close()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_a_red_call_is_recorded_with_its_end_and_latency(database_url: str) -> None:
    registry = CollectorRegistry()
    ledger = await open_ledger(database_url, registry=registry)
    async with recording(ledger, registry) as (writer, calls, _):
        paint = await calls.start_call(RED_CALLER, "call-1", RED_PHONE, "out")
        assert paint is not None
        assert paint.decision.colour == "red"
        calls.applied(RED_CALLER, AppliedFrame("call-1", 1, latency_ms=85.0))
        await calls.end_call(RED_CALLER, "call-1")
        await writer.flush()
        (row,) = await ledger.rows(*WIDE)
    assert (row.caller_id, row.call_id, row.direction, row.source) == (
        RED_CALLER,
        "call-1",
        "out",
        "api",
    )
    assert (row.colour, row.owner_id, row.entity_type) == ("red", OWNER, "company")
    assert row.rule
    assert row.entity_title
    assert row.owner_name
    assert row.phone_last4 == "4567"
    assert row.latency_ms == 85.0
    assert row.ended_at is not None
    assert row.ended_at >= row.time
    assert sample(registry, "callguard_ledger_recorded_total") == 1
    # Timed as any transaction, on the writer's own connection.
    assert sample(registry, "callguard_database_seconds_count", operation="ledger_write") >= 1


async def test_marks_folded_into_a_row_and_marks_across_batches_keep_each_other(
    database_url: str,
) -> None:
    """Marks of a call whose row is in the same batch go into that row; a repaint in a later
    batch (the CRM changed) keeps the end and the first latency an earlier batch wrote, and
    brings its own end along."""
    registry = CollectorRegistry()
    ledger = await open_ledger(database_url, registry=registry)
    async with recording(ledger, registry) as (writer, calls, _):
        await calls.start_call(RED_CALLER, "call-1", RED_PHONE)
        calls.applied(RED_CALLER, AppliedFrame("call-1", 1, latency_ms=40.0))
        calls.applied(RED_CALLER, AppliedFrame("call-1", 1, latency_ms=90.0))  # a repaint
        await writer.flush()
        (first,) = await ledger.rows(*WIDE)
        await calls.redecide()  # the same call painted again, in a batch of its own
        await calls.end_call(RED_CALLER, "call-1")
        await writer.flush()
        (row,) = await ledger.rows(*WIDE)
    assert (first.latency_ms, first.ended_at) == (40.0, None)
    assert (row.time, row.latency_ms) == (first.time, 40.0)
    assert row.ended_at is not None
    assert sample(registry, "callguard_ledger_recorded_total") == 2


async def test_a_full_queue_drops_and_counts_without_holding_the_paint(database_url: str) -> None:
    registry = CollectorRegistry()
    ledger = await open_ledger(database_url)
    async with recording(ledger, registry, start=False, capacity=2) as (writer, calls, fanout):
        for i in range(5):
            assert await calls.start_call(RED_CALLER, f"c{i}", RED_PHONE) is not None
        assert len(await fanout.wait(5)) == 5  # every paint went out
        assert sample(registry, "callguard_ledger_dropped_total", reason="full") == 3
        assert sample(registry, "callguard_ledger_queue") == 2
        writer.start()
        await writer.flush()
        assert sorted(r.call_id for r in await ledger.rows(*WIDE)) == ["c0", "c1"]


async def test_retention_deletes_rows_older_than_the_setting(database_url: str) -> None:
    registry = CollectorRegistry()
    ledger = await open_ledger(database_url)
    async with recording(ledger, registry, days=30) as (writer, calls, _):
        await calls.start_call(RED_CALLER, "c1", RED_PHONE)
        # The purge is queued behind the call: the row exists when it runs.
        assert await writer.purge(datetime.now(UTC) + timedelta(days=29)) == 0
        assert await writer.purge(datetime.now(UTC) + timedelta(days=31)) == 1
        assert await ledger.count() == 0
        assert sample(registry, "callguard_ledger_purged_total") == 1


async def test_stopping_writes_everything_queued(database_url: str) -> None:
    """A graceful shutdown: calls still gathering for their batch are written, not lost."""
    ledger = await open_ledger(database_url)
    writer = LedgerWriter(ledger.database)
    calls, fanout = make_calls()
    calls.ledger = writer
    writer.start()
    try:
        for i in range(30):
            await calls.start_call(RED_CALLER, f"c{i}", RED_PHONE)
            await calls.end_call(RED_CALLER, f"c{i}")
        await fanout.wait(60)
        await writer.stop()
        found = await ledger.rows(*WIDE)
        assert sorted(r.call_id for r in found) == sorted(f"c{i}" for i in range(30))
        assert all(r.ended_at is not None for r in found)
        with pytest.raises(RuntimeError, match="not running"):
            await writer.flush()
    finally:
        await writer.stop()
        await calls.close()
        await ledger.database.close()


async def test_without_a_ledger_calls_paint_as_before() -> None:
    calls, _fanout = make_calls()
    assert calls.ledger is None
    try:
        assert await calls.start_call(RED_CALLER, "c1", RED_PHONE) is not None
        calls.applied(RED_CALLER, AppliedFrame("c1", 1, latency_ms=5.0))
        assert await calls.end_call(RED_CALLER, "c1")
    finally:
        await calls.close()


async def test_a_locked_database_holds_rows_not_paints(database_url: str) -> None:
    """The writer waits for the lock in its own thread (up to CALLGUARD_DATABASE_TIMEOUT, long
    here) while calls go on being painted; once the lock goes, every call is written."""
    registry = CollectorRegistry()
    ledger = await open_ledger(database_url, wait=timeout(2))
    async with recording(ledger, registry) as (writer, calls, fanout):
        async with locked(database_url):
            await calls.start_call(RED_CALLER, "first", RED_PHONE)
            flushed = asyncio.ensure_future(writer.flush())  # the writer now waits for the lock
            for i in range(5):
                assert await calls.start_call(RED_CALLER, f"c{i}", RED_PHONE) is not None
            assert len(await fanout.wait(6)) == 6
            assert not flushed.done()
        await flushed
        await writer.flush()
        assert len(await ledger.rows(*WIDE)) == 6
        assert sample(registry, "callguard_ledger_dropped_total", reason="error") == 0


async def test_a_database_outage_drops_rows_not_paints(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Locked for longer than CALLGUARD_DATABASE_TIMEOUT (short here): the batch is dropped and
    counted with one warning for the outage, and the next call after it is written."""
    registry = CollectorRegistry()
    ledger = await open_ledger(database_url, wait=0.2, registry=registry)
    async with recording(ledger, registry) as (writer, calls, fanout):
        with caplog.at_level(logging.INFO, logger="callguard.ledger"):
            async with locked(database_url):
                for name in ("lost-1", "lost-2"):
                    assert await calls.start_call(RED_CALLER, name, RED_PHONE) is not None
                    await writer.flush()  # one batch each: two failures
            assert sample(registry, "callguard_ledger_dropped_total", reason="error") == 2
            assert not ledger.database.health()["ok"]
            assert await calls.start_call(RED_CALLER, "kept", RED_PHONE) is not None
            await writer.flush()
        assert [r.call_id for r in await ledger.rows(*WIDE)] == ["kept"]
        assert len(await fanout.wait(3)) == 3
        said = [
            (r.levelname, r.getMessage()) for r in caplog.records if r.name == "callguard.ledger"
        ]
        assert [level for level, _ in said] == ["WARNING", "INFO"]
        assert said[0][1].startswith("ledger: database ledger_write failed: ")
        assert said[0][1].endswith("; dropping calls until the database is back")
        assert said[1][1] == "ledger writes work again"
        assert sample(registry, "callguard_database_errors_total", operation="ledger_write") == 2
        assert ledger.database.health()["ok"]


async def test_a_lost_postgres_connection_costs_no_call(postgres_url: str) -> None:
    """The server dropped the writer's connection (a restart, a failover): the next batch goes
    through on a new connection."""
    registry = CollectorRegistry()
    ledger = await open_ledger(postgres_url)
    async with recording(ledger, registry) as (writer, calls, _):
        await calls.start_call(RED_CALLER, "before", RED_PHONE)
        await writer.flush()
        admin = await asyncpg.connect(postgres_url)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        assert killed >= 1
        await calls.start_call(RED_CALLER, "after", RED_PHONE)
        await writer.flush()
        assert sorted(r.call_id for r in await ledger.rows(*WIDE)) == ["after", "before"]
        assert sample(registry, "callguard_ledger_dropped_total", reason="error") == 0


async def test_retention_runs_in_the_background_from_the_start(database_url: str) -> None:
    registry = CollectorRegistry()
    ledger = await open_ledger(database_url)
    now = datetime.now(UTC)
    await ledger.write([row("old", at=now - timedelta(days=31)), row("new", at=now)])
    writer = LedgerWriter(ledger.database, days=30, purge_every=3600.0, registry=registry)
    writer.start()
    try:
        await writer.flush()  # answered after the retention that opens the writer's work
        assert [r.call_id for r in await ledger.rows(*WIDE)] == ["new"]
        assert sample(registry, "callguard_ledger_purged_total") == 1
    finally:
        await writer.stop()
        await ledger.database.close()


async def test_marks_from_another_process_wait_for_the_row_it_writes(database_url: str) -> None:
    """Two processes on one database: A painted the call and records its row; the tab is on B,
    which records the page's latency and the call's end. B's batch may commit before A's: its
    marks are then held and tried again, not lost; marks whose row never comes are given up
    after a while and counted."""
    registry_a, registry_b = CollectorRegistry(), CollectorRegistry()
    ledger = await open_ledger(database_url)
    second = await open_ledger(database_url)
    async with recording(ledger, registry_a, start=False) as (writer_a, calls, _):
        writer_b = LedgerWriter(
            second.database, purge_every=None, registry=registry_b, mark_retry=0.05, mark_tries=7
        )
        writer_b.start()
        try:
            paint = await calls.start_call(RED_CALLER, "call-1", RED_PHONE)
            assert paint is not None
            writer_b.applied(RED_CALLER, "call-1", 85.0)
            writer_b.ended(RED_CALLER, "call-1")
            writer_b.ended(RED_CALLER, "never-recorded")
            await writer_b.flush()  # before A wrote its row: all three held
            assert sample(registry_b, "callguard_ledger_marks_waiting") == 3
            writer_a.start()
            await writer_a.flush()
            async with asyncio.timeout(timeout(10)):  # B's next try finds A's row
                (found,) = await ledger.rows(*WIDE)
                while found.latency_ms is None or found.ended_at is None:
                    await asyncio.sleep(0.02)
                    (found,) = await ledger.rows(*WIDE)
                while sample(registry_b, "callguard_ledger_dropped_total", reason="no_row") < 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            assert found.latency_ms == 85.0
            assert found.ended_at >= found.time
            assert sample(registry_b, "callguard_ledger_dropped_total", reason="no_row") == 1
            assert sample(registry_b, "callguard_ledger_marks_waiting") == 0
        finally:
            await writer_b.stop()
            await second.database.close()


async def test_stopping_tries_the_held_marks_once_more(database_url: str) -> None:
    """A graceful shutdown does not wait out a held mark's retry: it tries it once more."""
    registry = CollectorRegistry()
    ledger = await open_ledger(database_url)
    second = await open_ledger(database_url)
    async with recording(ledger, CollectorRegistry()) as (writer_a, calls, _):
        writer_b = LedgerWriter(
            second.database, purge_every=None, registry=registry, mark_retry=3600.0
        )
        writer_b.start()
        try:
            writer_b.ended(RED_CALLER, "call-1")
            await writer_b.flush()
            assert sample(registry, "callguard_ledger_marks_waiting") == 1
            await calls.start_call(RED_CALLER, "call-1", RED_PHONE)
            await writer_a.flush()
        finally:
            await writer_b.stop()
            await second.database.close()
        (found,) = await ledger.rows(*WIDE)
    assert found.ended_at is not None
    assert sample(registry, "callguard_ledger_marks_waiting") == 0
    assert sample(registry, "callguard_ledger_dropped_total", reason="no_row") == 0
