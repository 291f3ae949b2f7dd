"""The tables as this version of the gateway reads and writes them.

Change a table only together with a new step in :mod:`gateway.store.migrations`; a test checks
that the migrated schema has exactly these tables and columns, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text

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
