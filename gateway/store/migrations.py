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

from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, Text, func, text
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


STEPS: tuple[Step, ...] = (Step(1, "approved company statuses", _v1_approved_status),)
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
