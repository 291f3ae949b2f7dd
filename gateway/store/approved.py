"""The approved status of each company (table ``approved_status``), read and written by the
status guard (gateway/portal/statuses.py) and seeded by ``callguard setup-portal``.

An empty string is a recorded "no status"; ``None`` from :meth:`ApprovedStatuses.get` means
"no record".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store.database import Database
from gateway.store.tables import approved_status as table


class ApprovedStatuses:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def get(self, company_id: str) -> str | None:
        async with self.database.transaction("approved_get") as conn:
            found = await conn.execute(
                select(table.c.status).where(table.c.company_id == company_id)
            )
            return found.scalar()

    async def set(self, company_id: str, status: str) -> None:
        insert = self._insert().values(
            company_id=company_id, status=status, updated_at=datetime.now(UTC)
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[table.c.company_id],
            set_={"status": insert.excluded.status, "updated_at": insert.excluded.updated_at},
        )
        async with self.database.transaction("approved_set", write=True) as conn:
            await conn.execute(upsert)

    async def set_default(self, company_id: str, status: str) -> bool:
        """Record ``status`` unless a record exists; True if it was recorded."""
        return bool(await self.set_defaults({company_id: status}))

    async def set_defaults(self, statuses: Mapping[str, str]) -> int:
        """Record each company's status unless it has a record, in one transaction; how many
        were recorded. ``setup-portal`` seeds a page of companies at a time through this."""
        if not statuses:
            return 0
        now = datetime.now(UTC)
        async with self.database.transaction("approved_seed", write=True) as conn:
            have = await conn.execute(
                select(table.c.company_id).where(table.c.company_id.in_(list(statuses)))
            )
            known = set(have.scalars())
            rows = [
                {"company_id": c, "status": s, "updated_at": now}
                for c, s in statuses.items()
                if c not in known
            ]
            if rows:
                # Another writer may have recorded one meanwhile (PostgreSQL): keep theirs.
                await conn.execute(self._insert().on_conflict_do_nothing(), rows)
            return len(rows)

    async def forget(self, company_id: str) -> None:
        async with self.database.transaction("approved_forget", write=True) as conn:
            await conn.execute(delete(table).where(table.c.company_id == company_id))

    def _insert(self) -> Any:
        # ON CONFLICT is spelled alike by both, but each dialect has its own construct.
        dialect = postgresql if self.database.dialect == "postgresql" else sqlite
        return dialect.insert(table)
