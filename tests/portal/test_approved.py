"""The approved-status store on a real Redis: shared, persistent, one judgement at a time."""

import asyncio

import pytest
import redis.asyncio as aioredis

from gateway.crm.dataset import load_dataset
from gateway.portal.approved import MemoryStore, RedisStore, open_store
from gateway.portal.status_datafile import DataFileStatusPortal
from gateway.portal.statuses import StatusGuard
from rules import load_policy
from tests.timing import timeout

pytestmark = pytest.mark.redis


async def test_values_are_shared_between_clients(
    redis_store: RedisStore, redis_url: str, store_key: str
) -> None:
    other = RedisStore(redis_url, key=store_key)
    try:
        assert await redis_store.get("10") is None
        await redis_store.set("10", "IN_WORK")
        await redis_store.set("11", "")
        assert await other.get("10") == "IN_WORK"
        assert await other.get("11") == ""  # "no status" is a record, not a miss
        await other.forget("10")
        assert await redis_store.get("10") is None
    finally:
        await other.close()


async def test_lock_serialises_judgements_across_clients(
    redis_store: RedisStore, redis_url: str, store_key: str
) -> None:
    other = RedisStore(redis_url, key=store_key)
    order: list[str] = []
    inside = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with redis_store.lock("10"):
            order.append("first in")
            inside.set()
            await release.wait()
            order.append("first out")

    async def second() -> None:
        await inside.wait()
        async with other.lock("10"):
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
        await other.close()


async def test_approved_status_survives_a_new_guard(redis_url: str, store_key: str) -> None:
    data = load_dataset()
    portal = DataFileStatusPortal(data)
    first = RedisStore(redis_url, key=store_key)
    guard = StatusGuard(portal, first, load_policy(), admins=("1",))
    assert (await portal.change_status(guard, "10", "DECLINED", "4")).action == "approved"
    await first.close()
    # A "restart": a new store and guard; a manager's change is judged against DECLINED.
    second = RedisStore(redis_url, key=store_key)
    try:
        guard = StatusGuard(portal, second, load_policy(), admins=("1",))
        data.companies["10"].status = "IN_WORK"
        await portal.change_status(guard, "10", "IN_WORK", "6")
        assert data.companies["10"].status == "DECLINED"
    finally:
        await second._redis.delete(store_key)
        await second.close()


async def test_open_store_picks_by_setting(redis_url: str) -> None:
    assert isinstance(open_store(None), MemoryStore)
    store = open_store(redis_url)
    assert isinstance(store, RedisStore)
    await store.close()


async def test_a_judgement_that_outlives_its_lock_finishes_with_a_warning(
    redis_store: RedisStore, redis_url: str, store_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A slow portal may keep a judgement past the lock's expiry: no traceback, one warning."""
    lock_key = "callguard:status-lock:" + store_key + ":10"
    redis = aioredis.from_url(redis_url)
    try:
        async with redis_store.lock("10"):
            assert await redis.exists(lock_key)
            await redis.delete(lock_key)  # what Redis does when the lock's time is up
            await redis_store.set("10", "IN_WORK")
        assert await redis_store.get("10") == "IN_WORK"
        assert "expired before its judgement finished" in caplog.text
    finally:
        await redis.aclose()
