"""The approved-status store: statuses in the database (a real SQLite file, the real PostgreSQL),
judgements of one company serialised across processes by a Redis lock."""

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.crm.dataset import load_dataset
from gateway.portal.approved import DatabaseStore, LocalLocks, RedisLocks, open_store
from gateway.portal.status_datafile import DataFileStatusPortal
from gateway.portal.statuses import StatusGuard
from gateway.store.approved import ApprovedStatuses
from gateway.store.database import Database
from rules import load_policy
from tests.timing import timeout


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await db.open()
    yield db
    await db.close()


async def test_values_are_shared_between_stores(database: Database) -> None:
    one, other = open_store(database, None), open_store(database, None)
    assert await one.get("10") is None
    await one.set("10", "IN_WORK")
    await one.set("11", "")
    assert await other.get("10") == "IN_WORK"
    assert await other.get("11") == ""  # "no status" is a record, not a miss
    assert not await other.set_default("10", "PENDING")
    assert await other.set_default("12", "PENDING")
    await other.forget("10")
    assert await one.get("10") is None
    await one.close()
    await other.close()
    # The database is the gateway's: closing a store leaves it open for the others.
    assert await ApprovedStatuses(database).get("12") == "PENDING"


async def test_approved_status_survives_a_restart(database_url: str) -> None:
    data = load_dataset()
    portal = DataFileStatusPortal(data)
    first = Database(database_url)
    await first.open()
    guard = StatusGuard(portal, open_store(first, None), load_policy(), admins=("1",))
    assert (await portal.change_status(guard, "10", "DECLINED", "4")).action == "approved"
    await first.close()
    # A "restart": a new database connection, store and guard; a manager's change is judged
    # against DECLINED.
    second = Database(database_url)
    await second.open()
    try:
        guard = StatusGuard(portal, open_store(second, None), load_policy(), admins=("1",))
        outcome = await portal.change_status(guard, "10", "IN_WORK", "6")
        assert (outcome.action, data.companies["10"].status) == ("reverted", "DECLINED")
    finally:
        await second.close()


@pytest.mark.redis
async def test_open_store_takes_the_lock_from_redis_when_configured(
    sqlite_url: str, redis_url: str
) -> None:
    db = Database(sqlite_url)
    local, shared = open_store(db, None), open_store(db, redis_url)
    assert isinstance(local, DatabaseStore)
    assert isinstance(local.locks, LocalLocks)
    assert isinstance(shared, DatabaseStore)
    assert isinstance(shared.locks, RedisLocks)
    await shared.close()


@pytest.mark.redis
async def test_lock_serialises_judgements_across_processes(redis_url: str, store_key: str) -> None:
    one, other = RedisLocks(redis_url, key=store_key), RedisLocks(redis_url, key=store_key)
    order: list[str] = []
    inside = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with one.hold("10"):
            order.append("first in")
            inside.set()
            await release.wait()
            order.append("first out")

    async def second() -> None:
        await inside.wait()
        async with other.hold("10"):
            order.append("second in")

    try:
        task = asyncio.gather(first(), second())
        await asyncio.wait_for(inside.wait(), timeout())
        # The second client is now polling the held Redis lock; let it run, then release.
        for _ in range(20):
            await asyncio.sleep(0)
        assert order == ["first in"]
        release.set()
        await asyncio.wait_for(task, timeout())
        assert order == ["first in", "first out", "second in"]
    finally:
        await one.close()
        await other.close()


@pytest.mark.redis
async def test_a_judgement_that_outlives_its_lock_finishes_with_a_warning(
    redis_url: str, store_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A slow portal may keep a judgement past the lock's expiry: no traceback, one warning."""
    locks = RedisLocks(redis_url, key=store_key)
    lock_key = "callguard:status-lock:" + store_key + ":10"
    redis = aioredis.from_url(redis_url)
    try:
        async with locks.hold("10"):
            assert await redis.exists(lock_key)
            await redis.delete(lock_key)  # what Redis does when the lock's time is up
        assert "expired before its judgement finished" in caplog.text
    finally:
        await redis.aclose()
        await locks.close()
