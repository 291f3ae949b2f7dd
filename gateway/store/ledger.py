"""The ledger of decided calls (table ``call_ledger``): written in batches by
:class:`gateway.ledger.writer.LedgerWriter`, read by the report and the digest, trimmed by
retention. Also the digest's claimed days (table ``ledger_digest``).

One row per call, keyed by (caller, call id). A later decision of the same call (the CRM data
or the rules changed while it rang) updates the row's decision and keeps its time: the row says
what the popup showed last, at the time the call began. Times are UTC.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store.database import Database
from gateway.store.tables import call_ledger as table
from gateway.store.tables import ledger_digest

DECISION = (
    "colour",
    "rule",
    "entity_type",
    "entity_id",
    "entity_title",
    "owner_id",
    "owner_name",
)
# Rows per DELETE in retention: short transactions, so writers never wait long.
PURGE_BATCH = 1000


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
        one transaction."""
        async with self.database.transaction("ledger_write", write=True) as conn:
            if rows:
                insert = self._insert()
                upsert = insert.on_conflict_do_update(
                    index_elements=[table.c.caller_id, table.c.call_id],
                    set_={name: insert.excluded[name] for name in DECISION},
                )
                await conn.execute(upsert, [_values(r) for r in rows])
            # One statement per kind of mark, executed for all of them (executemany): a
            # statement per mark cost the loop a round trip each.
            where = and_(
                table.c.caller_id == bindparam("m_caller"), table.c.call_id == bindparam("m_call")
            )
            ended = [
                {"m_caller": m.caller_id, "m_call": m.call_id, "m_ended": m.ended_at}
                for m in marks
                if m.ended_at is not None
            ]
            if ended:
                await conn.execute(
                    update(table).where(where).values(ended_at=bindparam("m_ended")), ended
                )
            applied = [
                {"m_caller": m.caller_id, "m_call": m.call_id, "m_latency": m.latency_ms}
                for m in marks
                if m.latency_ms is not None
            ]
            if applied:
                # The first applied paint is the ring -> applied latency; later ones repaint.
                await conn.execute(
                    update(table)
                    .where(where, table.c.latency_ms.is_(None))
                    .values(latency_ms=bindparam("m_latency")),
                    applied,
                )

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
        deleted = 0
        while True:
            oldest = (
                select(table.c.id)
                .where(table.c.time < _utc(before))
                .order_by(table.c.id)
                .limit(batch)
            )
            async with self.database.transaction("ledger_purge", write=True) as conn:
                ids = list((await conn.execute(oldest)).scalars())
                if ids:
                    await conn.execute(delete(table).where(table.c.id.in_(ids)))
            deleted += len(ids)
            if len(ids) < batch:
                return deleted

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

    def _insert(self) -> Any:
        dialect = postgresql if self.database.dialect == "postgresql" else sqlite
        return dialect.insert(table)


def _values(row: LedgerRow) -> dict[str, Any]:
    values = asdict(row)
    values["time"] = _utc(row.time)
    return values


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
