"""The ledger repository on a real SQLite file and on the real PostgreSQL server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.store.database import Database, DatabaseError
from gateway.store.ledger import CallMark, Ledger, LedgerRow, TooManyRows
from gateway.store.ledger_sink import open_sink
from gateway.store.url import MEMORY_URL

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def row(call_id: str, caller: str = "7", at: datetime = T0, colour: str = "red") -> LedgerRow:
    return LedgerRow(
        time=at,
        call_id=call_id,
        caller_id=caller,
        direction="out",
        source="ws",
        colour=colour,
        rule="other_manager_active" if colour == "red" else None,
        entity_type="company",
        entity_id="10",
        entity_title="ООО «Ромашка»",
        owner_id="6",
        owner_name="Анна Смирнова",
        phone_last4="4567",
    )


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[Ledger]:
    db = Database(database_url)
    await db.open()
    try:
        yield Ledger(db)
    finally:
        await db.close()


async def test_rows_round_trip_with_marks(ledger: Ledger) -> None:
    await ledger.write([row("c1"), row("c2", caller="8", colour="green")])
    ended = T0 + timedelta(minutes=3)
    await ledger.write(
        [], [CallMark("7", "c1", ended_at=ended), CallMark("7", "c1", latency_ms=120.5)]
    )
    await ledger.write([], [CallMark("7", "c1", latency_ms=999.0)])  # a repaint: kept first
    found = await ledger.rows(T0, T0 + timedelta(days=1))
    assert [(r.call_id, r.colour) for r in found] == [("c1", "red"), ("c2", "green")]
    first = found[0]
    assert first.time == T0
    assert first.ended_at == ended
    assert first.latency_ms == 120.5
    assert first.entity_title == "ООО «Ромашка»"
    assert first.phone_last4 == "4567"


async def test_a_later_decision_updates_the_row_and_keeps_its_time(ledger: Ledger) -> None:
    await ledger.write([row("c1", colour="none")])
    await ledger.write([row("c1", at=T0 + timedelta(seconds=5), colour="red")])
    (only,) = await ledger.rows(T0, T0 + timedelta(days=1))
    assert (only.colour, only.time, only.rule) == ("red", T0, "other_manager_active")


async def test_rows_filter_by_range_colour_and_callers(ledger: Ledger) -> None:
    await ledger.write(
        [
            row("a", "7", T0 - timedelta(seconds=1)),
            row("b", "7", T0),
            row("c", "8", T0 + timedelta(hours=1)),
            row("d", "9", T0 + timedelta(hours=2), colour="green"),
            row("e", "7", T0 + timedelta(days=1)),
        ]
    )
    end = T0 + timedelta(days=1)
    assert [r.call_id for r in await ledger.rows(T0, end)] == ["b", "c", "d"]
    assert [r.call_id for r in await ledger.rows(T0, end, colour="red")] == ["b", "c"]
    assert [r.call_id for r in await ledger.rows(T0, end, callers={"8", "9"})] == ["c", "d"]
    assert await ledger.rows(T0, end, callers=set()) == []
    with pytest.raises(TooManyRows):
        await ledger.rows(T0, end, limit=2)


async def test_purge_deletes_older_rows_in_batches(ledger: Ledger) -> None:
    await ledger.write([row(f"old{i}", at=T0 - timedelta(days=400, minutes=i)) for i in range(7)])
    await ledger.write([row("new", at=T0)])
    assert await ledger.purge(T0 - timedelta(days=365), batch=3) == 7
    assert [r.call_id for r in await ledger.rows(T0 - timedelta(days=999), T0 + timedelta(1))] == [
        "new"
    ]
    assert await ledger.count() == 1


async def test_a_digest_day_is_claimed_once(database_url: str) -> None:
    dbs = [Database(database_url) for _ in range(3)]
    for db in dbs:
        await db.open()
    try:
        day = date(2026, 3, 10)
        claims = await asyncio.gather(*(Ledger(db).claim_day(day) for db in dbs))
        assert sorted(claims) == [False, False, True]
        assert await Ledger(dbs[0]).claim_day(day + timedelta(days=1))
    finally:
        for db in dbs:
            await db.close()


async def test_an_in_memory_database_is_one_for_the_engine_and_the_writers_connection() -> None:
    """Writes go through a connection of their own (gateway.store.ledger_sink); in memory, that
    connection must find the engine's database, and another Database must not."""
    first, second = Database(MEMORY_URL), Database(MEMORY_URL)
    await first.open()
    await second.open()
    try:
        await Ledger(first).write([row("c1")], [CallMark("7", "c1", latency_ms=9.0)])
        (found,) = await Ledger(first).rows(T0, T0 + timedelta(days=1))
        assert (found.call_id, found.latency_ms) == ("c1", 9.0)
        assert await Ledger(second).count() == 0
    finally:
        await first.close()
        await second.close()


async def test_a_closed_database_is_not_written(database_url: str) -> None:
    db = Database(database_url)
    with pytest.raises(DatabaseError, match="is not open"):
        await Ledger(db).write([row("c1")])


async def test_the_writers_stamps_are_the_stamps_of_their_times(database_url: str) -> None:
    """``stamp_at`` (the writer's, formatted once a second on SQLite) stores what ``stamp`` of
    the same moment stores, so the report reads the writer's rows as the repository's."""
    db = Database(database_url)
    await db.open()
    sink = open_sink(db)
    try:
        start = T0.timestamp()
        # Steps that are not round in binary or in decimal, across second and day boundaries,
        # and the fractions that round up to the next second.
        moments = [start + k * 0.0001373 for k in range(20_000)]
        moments += [start + 86_399.9999996, start + 59.9999995, start + 0.0000005, start + 0.5]
        for seconds in moments:
            assert sink.stamp_at(seconds) == sink.stamp(datetime.fromtimestamp(seconds, UTC))
    finally:
        sink.close()
        await db.close()


async def test_the_writers_nulls_are_nulls(database_url: str) -> None:
    """The sink binds None as NULL (on SQLite through the None adapter it registers for speed):
    a call that matched no rule reads back with no rule, entity or owner, and SQL sees NULLs."""
    db = Database(database_url)
    await db.open()
    sink = open_sink(db)
    try:
        at = sink.stamp(T0)
        blank = (at, "c1", "7", "in", "api", "none", None, None, None, None, None, None, "4567")
        # In a thread, as the writer's: the PostgreSQL sink runs an event loop of its own.
        await asyncio.to_thread(sink.write, [(*blank, None, None)])
        (only,) = await Ledger(db).rows(T0, T0 + timedelta(days=1))
        assert (only.rule, only.entity_type, only.owner_name, only.ended_at) == (None,) * 4
        assert only.latency_ms is None
        async with db.require_open().connect() as conn:
            nulls = await conn.exec_driver_sql(
                "SELECT COUNT(*) FROM call_ledger WHERE rule IS NULL AND owner_id IS NULL "
                "AND ended_at IS NULL AND latency_ms IS NULL"
            )
            assert nulls.scalar() == 1
    finally:
        await asyncio.to_thread(sink.close)
        await db.close()
