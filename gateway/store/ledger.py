"""The ledger of decided calls (table ``call_ledger``): written in batches by
:class:`gateway.ledger.writer.LedgerWriter` (through :mod:`gateway.store.ledger_sink`, off the
event loop), read by the report and the digest, trimmed by retention. Also the digest's claimed
days (table ``ledger_digest``).

One row per call, keyed by (caller, call id). A later decision of the same call (the CRM data
or the rules changed while it rang) updates the row's decision and keeps its time: the row says
what the popup showed last, at the time the call began. Times are UTC.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store.database import Database
from gateway.store.ledger_sink import PURGE_BATCH, LedgerSink, Row, open_sink
from gateway.store.tables import call_ledger as table
from gateway.store.tables import ledger_digest

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LedgerRow:
    time: datetime
    call_id: str
    caller_id: str
    direction: str
    source: str
    colour: str
    rule: str | None
    entity_type: str | None
    entity_id: str | None
    entity_title: str | None
    owner_id: str | None
    owner_name: str | None
    phone_last4: str
    ended_at: datetime | None = None
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class CallMark:
    """Something a tab said about a recorded call: it ended, or its paint was applied."""

    caller_id: str
    call_id: str
    ended_at: datetime | None = None
    latency_ms: float | None = None


class TooManyRows(Exception):
    """A report range holds more rows than the limit (CALLGUARD_REPORT_ROWS)."""


class Ledger:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def write(self, rows: Sequence[LedgerRow], marks: Sequence[CallMark] = ()) -> None:
        """Record calls (one row per caller and call id in ``rows``) and then the marks, in
        one transaction, now: through the statements the writer uses, on a connection of its
        own in a worker thread (seeding, imports, tests)."""

        def write(sink: LedgerSink) -> None:
            ended = [(sink.stamp(m.ended_at), m.caller_id, m.call_id) for m in marks if m.ended_at]
            applied = [
                (m.latency_ms, m.caller_id, m.call_id) for m in marks if m.latency_ms is not None
            ]
            sink.write([_values(sink, r) for r in rows], ended, applied)

        await asyncio.to_thread(self._with_sink, write)

    async def rows(
        self,
        start: datetime,
        end: datetime,
        *,
        colour: str | None = None,
        callers: Collection[str] | None = None,
        limit: int = 50_000,
    ) -> list[LedgerRow]:
        """Calls from ``start`` (inclusive) to ``end`` (exclusive), oldest first; only
        ``colour``'s (None: all) and only ``callers``' (None: everyone's). More than ``limit``
        raises :class:`TooManyRows`."""
        if callers is not None and not callers:
            return []
        query = select(table).where(table.c.time >= _utc(start), table.c.time < _utc(end))
        if colour is not None:
            query = query.where(table.c.colour == colour)
        if callers is not None:
            query = query.where(table.c.caller_id.in_(sorted(callers)))
        query = query.order_by(table.c.time, table.c.id).limit(limit + 1)
        async with self.database.transaction("ledger_read") as conn:
            found = (await conn.execute(query)).mappings().all()
        if len(found) > limit:
            raise TooManyRows(f"more than {limit} calls")
        return [_row(dict(r)) for r in found]

    async def purge(self, before: datetime, batch: int = PURGE_BATCH) -> int:
        """Delete calls older than ``before``, ``batch`` rows per transaction; how many."""
        return await asyncio.to_thread(self._with_sink, lambda sink: sink.purge(before, batch))

    async def count(self) -> int:
        async with self.database.transaction("ledger_read") as conn:
            return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())

    async def claim_day(self, day: date) -> bool:
        """Claim ``day``'s digest; True for the one process that claimed it first."""
        dialect = postgresql if self.database.dialect == "postgresql" else sqlite
        insert = dialect.insert(ledger_digest).values(day=day, claimed_at=datetime.now(UTC))
        async with self.database.transaction("ledger_digest", write=True) as conn:
            done = await conn.execute(insert.on_conflict_do_nothing())
            return bool(done.rowcount)

    def _with_sink(self, work: Callable[[LedgerSink], T]) -> T:
        sink = open_sink(self.database)
        try:
            return work(sink)
        finally:
            sink.close()


def _values(sink: LedgerSink, row: LedgerRow) -> Row:
    """``row`` in the order of :data:`gateway.store.ledger_sink.COLUMNS`."""
    return (
        sink.stamp(row.time),
        row.call_id,
        row.caller_id,
        row.direction,
        row.source,
        row.colour,
        row.rule,
        row.entity_type,
        row.entity_id,
        row.entity_title,
        row.owner_id,
        row.owner_name,
        row.phone_last4,
        None if row.ended_at is None else sink.stamp(row.ended_at),
        row.latency_ms,
    )


def _row(found: dict[str, Any]) -> LedgerRow:
    found.pop("id", None)
    for name in ("time", "ended_at"):
        if found[name] is not None:
            found[name] = _utc(found[name])
    return LedgerRow(**found)


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
