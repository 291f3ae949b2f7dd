"""The portal's request budget: live lookups first, nothing held without a request, one bucket
for every process on Redis, a fair share per user. Real client, fake portal, real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.crm.budget import Lane, LocalLevel, background
from gateway.crm.budgetredis import RedisLevel
from gateway.crm.client import BitrixClient, BitrixRateLimited, Limits
from gateway.tools.fakeportal import FakePortal
from tests.redis_server import REDIS_URL, require_redis
from tests.timing import timeout

SLOW = 0.01  # a drain so slow that nothing leaves the bucket during a test


@pytest.fixture
async def clients(fake_portal: FakePortal) -> AsyncIterator[list[BitrixClient]]:
    made: list[BitrixClient] = []
    yield made
    for client in made:
        await client.close()


def client_for(portal: FakePortal, made: list[BitrixClient], **limits: object) -> BitrixClient:
    client = BitrixClient(portal.webhook_url, Limits(**limits))  # type: ignore[arg-type]
    made.append(client)
    return client


def soon() -> float:
    return time.monotonic() + timeout()


async def test_background_work_never_takes_the_last_places(
    fake_portal: FakePortal, clients: list[BitrixClient]
) -> None:
    client = client_for(fake_portal, clients, rate_burst=10, rate_per_second=SLOW, rate_reserve=4)
    with background():
        for _ in range(6):
            await client.call("profile", deadline=soon())
        with pytest.raises(BitrixRateLimited, match="client-side rate limit"):
            await client.call("profile", deadline=soon())
    for _ in range(4):  # the reserve is the live lane's
        await client.call("profile", deadline=soon())
    with pytest.raises(BitrixRateLimited):
        await client.call("profile", deadline=soon())
    assert fake_portal.requests == {"profile": 10}


async def test_a_live_request_overtakes_queued_background_work(
    fake_portal: FakePortal, clients: list[BitrixClient]
) -> None:
    client = client_for(fake_portal, clients, rate_burst=2, rate_per_second=4.0, rate_reserve=0)
    await client.call("profile", deadline=soon())
    await client.call("profile", deadline=soon())  # full: each next place in 0.25 s
    order: list[str] = []

    async def one(name: str, bg: bool) -> None:
        await client.call("profile", deadline=soon(), background=bg)
        order.append(name)

    queued = [asyncio.create_task(one(f"bg{i}", True)) for i in range(3)]
    await asyncio.sleep(0)  # the background requests are queued first
    await asyncio.wait_for(one("live", False), timeout())
    await asyncio.wait_for(asyncio.gather(*queued), timeout())
    assert order == ["live", "bg0", "bg1", "bg2"]


async def test_a_request_that_gives_up_holds_no_place(
    fake_portal: FakePortal, clients: list[BitrixClient]
) -> None:
    # The failure: lookups that failed open kept the places they had taken, so the
    # bucket looked full for seconds while nothing was sent.
    client = client_for(fake_portal, clients, rate_burst=2, rate_per_second=2.0)
    level = client.budget.level
    assert isinstance(level, LocalLevel)
    await client.call("profile", deadline=soon())
    await client.call("profile", deadline=soon())
    near = time.monotonic() + 0.2  # less than the 0.5 s until the next place
    results = await asyncio.gather(
        *(client.call("profile", deadline=near) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, BitrixRateLimited) for r in results)
    assert level.level <= 2.0  # nothing taken for the 20 that were not sent
    assert fake_portal.requests == {"profile": 2}


async def test_a_waiting_request_that_is_cancelled_leaves_the_queue(
    fake_portal: FakePortal, clients: list[BitrixClient]
) -> None:
    client = client_for(fake_portal, clients, rate_burst=1, rate_per_second=2.0)
    await client.call("profile", deadline=soon())
    waiting = asyncio.create_task(client.call("profile", deadline=soon()))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert client.budget.queued == 0
    await asyncio.wait_for(client.call("profile", deadline=soon()), timeout())
    assert fake_portal.requests == {"profile": 2}


async def test_one_users_flood_leaves_the_others_their_share(
    fake_portal: FakePortal, clients: list[BitrixClient]
) -> None:
    client = client_for(
        fake_portal, clients, rate_burst=10, rate_per_second=SLOW, rate_reserve=0, user_share=0.3
    )
    budget = client.budget
    flood = [budget.acquire(Lane(user="7"), soon()) for _ in range(10)]
    results = await asyncio.gather(*flood, return_exceptions=True)
    assert sum(r is None for r in results) == 3  # 30% of the bucket
    for _ in range(3):
        await budget.acquire(Lane(user="8"), soon())


async def test_every_process_draws_on_one_bucket_in_redis(
    fake_portal: FakePortal, clients: list[BitrixClient]
) -> None:
    require_redis()
    key = f"callguard-test-{uuid.uuid4().hex}:rest-budget"
    levels = [RedisLevel(Redis.from_url(REDIS_URL), key, 5, SLOW) for _ in range(2)]
    one, two = (
        BitrixClient(fake_portal.webhook_url, Limits(rate_burst=5, rate_per_second=SLOW), level=lv)
        for lv in levels
    )
    clients += [one, two]
    # Five concurrent requests from two "processes": exactly five places, whoever takes them.
    calls = [c.call("profile", deadline=soon()) for c in (one, two, one, two, one, two, one)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert sum(isinstance(r, BitrixRateLimited) for r in results) == 2
    assert fake_portal.requests == {"profile": 5}
    redis = Redis.from_url(REDIS_URL)
    try:
        assert 0 < await redis.ttl(key) <= 5 / SLOW + 60
        await redis.delete(key)
    finally:
        await redis.aclose()
