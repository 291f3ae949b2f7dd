"""The pinned portal account on a real SQLite file and on the real PostgreSQL server."""

from __future__ import annotations

import asyncio

from gateway.store.database import Database
from gateway.store.portal_pin import PortalPin
from tests.timing import timeout


async def test_the_first_pin_stands(database_url: str) -> None:
    db = Database(database_url)
    await db.open()
    try:
        pins = PortalPin(db)
        assert await pins.get() is None
        assert await pins.pin("a" * 32, "example.bitrix24.ru") == "a" * 32
        # A second pin (another process, another account) does not replace it.
        assert await pins.pin("b" * 32, "other.bitrix24.ru") == "a" * 32
        assert await pins.get() == "a" * 32
    finally:
        await db.close()
    reopened = Database(database_url)
    await reopened.open()
    try:
        assert await PortalPin(reopened).get() == "a" * 32  # a "restart" keeps it
    finally:
        await reopened.close()


async def test_processes_pinning_at_once_agree(database_url: str) -> None:
    dbs = [Database(database_url) for _ in range(3)]
    try:
        for db in dbs:
            await db.open()
        async with asyncio.timeout(timeout(2)):
            won = await asyncio.gather(
                *(PortalPin(db).pin(f"{i}" * 32, "example.bitrix24.ru") for i, db in enumerate(dbs))
            )
        assert len(set(won)) == 1
    finally:
        for db in dbs:
            await db.close()
