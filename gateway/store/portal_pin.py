"""The portal account sign-ins are pinned to (table ``portal_pin``, one row): the first
successful sign-in through the portal's application records its ``member_id``; from then on a
sign-in from any other Bitrix24 account is refused (gateway/web/oauth/signin.py). In the
database, not a file, so every gateway process and host sharing it pins the same account.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store.database import Database
from gateway.store.tables import portal_pin as table

ROW = 1


class PortalPin:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def get(self) -> str | None:
        async with self.database.transaction("pin_get") as conn:
            found = await conn.execute(select(table.c.member_id).where(table.c.id == ROW))
            return found.scalar()

    async def pin(self, member_id: str, domain: str) -> str:
        """Pin ``member_id`` unless one is pinned; the pinned one (the first writer's wins)."""
        dialect: Any = postgresql if self.database.dialect == "postgresql" else sqlite
        insert = dialect.insert(table).values(
            id=ROW, member_id=member_id, domain=domain, pinned_at=datetime.now(UTC)
        )
        async with self.database.transaction("pin_set", write=True) as conn:
            await conn.execute(insert.on_conflict_do_nothing())
            found = await conn.execute(select(table.c.member_id).where(table.c.id == ROW))
            return str(found.scalar())
