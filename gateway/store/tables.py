"""The tables as this version of the gateway reads and writes them.

Change a table only together with a new step in :mod:`gateway.store.migrations`; a test checks
that the migrated schema has exactly these tables and columns, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# One row per applied migration step (gateway.store.migrations).
schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

# The last approved status of each company (gateway.portal.statuses): "" is "no status".
approved_status = Table(
    "approved_status",
    metadata,
    Column("company_id", String(64), primary_key=True),
    Column("status", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The Bitrix24 account (member_id) the first sign-in through the portal's application pinned
# (gateway/web/oauth): one row, id 1. Deleting it lets the next sign-in pin again.
portal_pin = Table(
    "portal_pin",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("member_id", String(64), nullable=False),
    Column("domain", Text, nullable=False),
    Column("pinned_at", DateTime(timezone=True), nullable=False),
)

# One row per decided call (gateway.ledger): the first paint's time, the latest decision, and
# what the tabs said later (when it ended, the ring -> applied latency). Never the full number.
call_ledger = Table(
    "call_ledger",
    metadata,
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

# One row per day whose morning digest a process claimed (gateway.ledger.digest): the day's
# digest goes out once, however many processes run.
ledger_digest = Table(
    "ledger_digest",
    metadata,
    Column("day", Date, primary_key=True),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
)
