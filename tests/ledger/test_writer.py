"""The pipeline records decided calls through the ledger writer, on a real SQLite file: the
paint first, the row after; a full queue drops and counts; no full number is kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from gateway.ledger.writer import LedgerWriter
from gateway.live.wire import AppliedFrame
from gateway.store.database import Database
from gateway.store.ledger import Ledger
from tests.live.conftest import OWNER, RED_CALLER, RED_PHONE
from tests.live.test_calls import make_calls

WIDE = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


@pytest.fixture
async def ledger(sqlite_url: str) -> AsyncIterator[Ledger]:
    db = Database(sqlite_url)
    await db.open()
    try:
        yield Ledger(db)
    finally:
        await db.close()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_a_red_call_is_recorded_with_its_end_and_latency(ledger: Ledger) -> None:
    registry = CollectorRegistry()
    writer = LedgerWriter(ledger, registry=registry)
    calls, _fanout = make_calls()
    calls.ledger = writer
    writer.start()
    try:
        paint = await calls.start_call(RED_CALLER, "call-1", RED_PHONE, "out")
        assert paint is not None
        assert paint.decision.colour == "red"
        calls.applied(RED_CALLER, AppliedFrame("call-1", 1, latency_ms=85.0))
        await calls.end_call(RED_CALLER, "call-1")
        await writer.flush()
        (row,) = await ledger.rows(*WIDE)
    finally:
        await writer.stop()
        await calls.close()
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


async def test_a_full_queue_drops_and_counts_without_holding_the_paint(ledger: Ledger) -> None:
    registry = CollectorRegistry()
    writer = LedgerWriter(ledger, capacity=2, registry=registry)  # not started: nothing drains
    calls, fanout = make_calls()
    calls.ledger = writer
    try:
        for i in range(5):
            assert await calls.start_call(RED_CALLER, f"c{i}", RED_PHONE) is not None
        assert len(await fanout.wait(5)) == 5  # every paint went out
        assert sample(registry, "callguard_ledger_dropped_total", reason="full") == 3
        writer.start()
        await writer.flush()
        assert sorted(r.call_id for r in await ledger.rows(*WIDE)) == ["c0", "c1"]
    finally:
        await writer.stop()
        await calls.close()


async def test_retention_deletes_rows_older_than_the_setting(ledger: Ledger) -> None:
    registry = CollectorRegistry()
    writer = LedgerWriter(ledger, days=30, registry=registry)
    calls, _ = make_calls()
    calls.ledger = writer
    writer.start()
    try:
        await calls.start_call(RED_CALLER, "c1", RED_PHONE)
        await writer.flush()
        assert await writer.purge(datetime.now(UTC) + timedelta(days=29)) == 0
        assert await writer.purge(datetime.now(UTC) + timedelta(days=31)) == 1
        assert await ledger.count() == 0
        assert sample(registry, "callguard_ledger_purged_total") == 1
    finally:
        await writer.stop()
        await calls.close()


async def test_without_a_ledger_calls_paint_as_before() -> None:
    calls, _fanout = make_calls()
    assert calls.ledger is None
    try:
        assert await calls.start_call(RED_CALLER, "c1", RED_PHONE) is not None
        calls.applied(RED_CALLER, AppliedFrame("c1", 1, latency_ms=5.0))
        assert await calls.end_call(RED_CALLER, "c1")
    finally:
        await calls.close()


async def test_a_database_outage_drops_rows_not_paints(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    writer = LedgerWriter(ledger, purge_every=None, registry=registry)
    calls, fanout = make_calls()
    calls.ledger = writer
    writer.start()
    try:
        await ledger.database.close()
        assert await calls.start_call(RED_CALLER, "lost", RED_PHONE) is not None
        await writer.flush()
        assert sample(registry, "callguard_ledger_dropped_total", reason="error") == 1
        assert [r.getMessage() for r in caplog.records if r.name == "callguard.ledger"] == [
            f"ledger: the database {ledger.database.shown} is not open; "
            "dropping calls until the database is back"
        ]
        await ledger.database.open()
        assert await calls.start_call(RED_CALLER, "kept", RED_PHONE) is not None
        await writer.flush()
        assert [r.call_id for r in await ledger.rows(*WIDE)] == ["kept"]
        assert len(await fanout.wait(2)) == 2
    finally:
        await writer.stop()
        await calls.close()
