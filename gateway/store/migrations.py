"""Versioned schema migrations, applied by :meth:`gateway.store.database.Database.open`.

An ordered list of steps and a ``schema_version`` table (one row per applied step), run in one
transaction at every start: a database is either at the old version or at the new one. Several
processes starting at once take turns (a PostgreSQL advisory lock; SQLite's write lock, taken
by ``BEGIN IMMEDIATE``). A database newer than this gateway stops it instead of being guessed at.

Why not Alembic: the schema is a few tables that only this gateway writes, so its script
directory, ``env.py`` and ini file would outweigh the migrations themselves, and running it at
start inside an async engine needs the same ``run_sync`` seam as this module, while the lock
above is ours to write either way. Steps here are plain SQLAlchemy Core, ship in the wheel as
part of the package, and are tested on SQLite and PostgreSQL.

Adding a table (the calls ledger, say): describe it in :mod:`gateway.store.tables`, append a
step that creates it from a frozen copy of that description, never edit an applied step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy import insert as sql_insert
from sqlalchemy import select as sql_select

from gateway.store.tables import schema_version

# pg_advisory_xact_lock key: "callguar" in ASCII, a number no other tool is likely to pick.
LOCK_KEY = 0x63616C6C67756172


@dataclass(frozen=True, slots=True)
class Step:
    version: int
    description: str
    run: Callable[[Connection], None]


def _v1_approved_status(conn: Connection) -> None:
    # A frozen copy of the table as version 1 made it, not gateway.store.tables' current one.
    Table(
        "approved_status",
        MetaData(),
        Column("company_id", String(64), primary_key=True),
        Column("status", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    ).create(conn)


def _v2_portal_pin(conn: Connection) -> None:
    Table(
        "portal_pin",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("member_id", String(64), nullable=False),
        Column("domain", Text, nullable=False),
        Column("pinned_at", DateTime(timezone=True), nullable=False),
    ).create(conn)


def _v3_call_ledger(conn: Connection) -> None:
    meta = MetaData()
    Table(
        "call_ledger",
        meta,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
        Column("time", DateTime(timezone=True), nullable=False),
        Column("call_id", String(128), nullable=False),
        Column("caller_id", String(32), nullable=False),
        Column("direction", String(8), nullable=False),
        Column("source", String(16), nullable=False),
        Column("colour", String(64), nullable=False),
        Column("rule", String(128), nullable=True),
        Column("entity_type", String(16), nullable=True),
        Column("entity_id", String(64), nullable=True),
        Column("entity_title", Text, nullable=True),
        Column("owner_id", String(32), nullable=True),
        Column("owner_name", Text, nullable=True),
        Column("phone_last4", String(4), nullable=False),
        Column("ended_at", DateTime(timezone=True), nullable=True),
        Column("latency_ms", Float, nullable=True),
        Index("call_ledger_call", "caller_id", "call_id", unique=True),
        Index("call_ledger_time", "time"),
    )
    Table(
        "ledger_digest",
        meta,
        Column("day", Date, primary_key=True),
        Column("claimed_at", DateTime(timezone=True), nullable=False),
    )
    meta.create_all(conn)


STEPS: tuple[Step, ...] = (
    Step(1, "approved company statuses", _v1_approved_status),
    Step(2, "the portal account sign-ins are pinned to", _v2_portal_pin),
    Step(3, "the ledger of decided calls and its digest days", _v3_call_ledger),
)
LATEST = STEPS[-1].version


class SchemaTooNew(Exception):
    """The database was migrated by a newer gateway than this one."""


def current_version(conn: Connection) -> int:
    found = conn.execute(sql_select(func.max(schema_version.c.version))).scalar()
    return int(found or 0)


def migrate(conn: Connection) -> list[int]:
    """Apply the steps the database lacks, in order; the versions applied. The caller holds a
    write transaction and commits it."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    schema_version.create(conn, checkfirst=True)
    current = current_version(conn)
    if current > LATEST:
        raise SchemaTooNew(
            f"the database is at schema version {current}, this Callguard knows up to {LATEST}: "
            "upgrade Callguard, or point it at another database"
        )
    applied: list[int] = []
    for step in STEPS:
        if step.version <= current:
            continue
        step.run(conn)
        conn.execute(
            sql_insert(schema_version).values(
                version=step.version, description=step.description, applied_at=datetime.now(UTC)
            )
        )
        applied.append(step.version)
    return applied
