"""The fan-out's lean Redis connection (gateway/live/resp.py) against the real Redis at
127.0.0.1:6379, on both event loops (tests/live/conftest.py): what the URL asks is done, replies
stay with their batch, messages reach the callback in order, and a lost connection says so."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gateway.live.resp import RespConnection
from tests.redis_server import REDIS_URL, require_redis
from tests.timing import timeout

pytestmark = pytest.mark.redis


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    require_redis()
    redis: aioredis.Redis = aioredis.from_url(REDIS_URL)
    try:
        yield redis
    finally:
        await redis.aclose()


@pytest.fixture
def key() -> str:
    return f"callguard-test-{uuid.uuid4().hex[:8]}"


async def test_a_batch_gets_its_replies_in_order(client: aioredis.Redis, key: str) -> None:
    conn = await RespConnection.open(REDIS_URL)
    try:
        async with asyncio.timeout(timeout()):
            replies = await conn.execute(
                [("HSET", key, "f", "v"), ("HGET", key, "f"), ("DEL", key), ("PING",)]
            )
        assert replies == [1, b"v", 1, b"PONG"]
    finally:
        conn.close()


async def test_the_urls_database_and_name_are_used(client: aioredis.Redis, key: str) -> None:
    conn = await RespConnection.open(REDIS_URL.rsplit("/", 1)[0] + "/5", name="cg-test-" + key)
    other: aioredis.Redis = aioredis.from_url(REDIS_URL.rsplit("/", 1)[0] + "/5")
    try:
        async with asyncio.timeout(timeout()):
            await conn.execute([("SET", key, "in five", "EX", 60)])
            names = [c["name"] for c in await client.client_list()]
            assert await other.get(key) == b"in five"
            assert await client.get(key) is None  # database 0 has no such key
        assert "cg-test-" + key in names
    finally:
        conn.close()
        await other.delete(key)
        await other.aclose()


async def test_a_user_and_password_in_the_url_authenticate(
    client: aioredis.Redis, key: str
) -> None:
    await client.execute_command("ACL", "SETUSER", key, "on", ">s3cret", "~*", "+@all")
    try:
        conn = await RespConnection.open(f"redis://{key}:s3cret@127.0.0.1:6379/0")
        async with asyncio.timeout(timeout()):
            assert await conn.execute([("ACL", "WHOAMI")]) == [key.encode()]
        conn.close()
        with pytest.raises(ResponseError, match="WRONGPASS"):
            async with asyncio.timeout(timeout()):
                await RespConnection.open(f"redis://{key}:wrong@127.0.0.1:6379/0")
    finally:
        await client.execute_command("ACL", "DELUSER", key)


async def test_an_error_reply_raises_and_the_connection_goes_on(
    client: aioredis.Redis, key: str
) -> None:
    conn = await RespConnection.open(REDIS_URL)
    try:
        async with asyncio.timeout(timeout()):
            await client.set(key, "a string")
            with pytest.raises(ResponseError, match="WRONGTYPE"):
                await conn.execute([("HSET", key, "f", "v"), ("PING",)])
            assert await conn.execute([("GET", key)]) == [b"a string"]
    finally:
        conn.close()
        await client.delete(key)


async def test_a_batch_given_up_on_leaves_its_replies_behind(key: str) -> None:
    """A caller's timeout ends the wait, not the reply: the next batch must not take it."""
    require_redis()
    conn = await RespConnection.open(REDIS_URL)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await conn.execute([("BLPOP", key, "0.3")])  # answers nil after 0.3 s
        async with asyncio.timeout(timeout()):
            assert await conn.execute([("ECHO", "mine")]) == [b"mine"]
    finally:
        conn.close()


async def test_messages_reach_the_callback_in_order(client: aioredis.Redis, key: str) -> None:
    conn = await RespConnection.open(REDIS_URL)
    got: list[bytes] = []
    all_in = asyncio.Event()

    def arrived(data: bytes) -> None:
        got.append(data)
        if len(got) == 500:
            all_in.set()

    try:
        async with asyncio.timeout(timeout()):
            await conn.subscribe(key, arrived)
            async with client.pipeline(transaction=False) as pipe:
                for n in range(500):
                    pipe.publish(key, str(n))
                    pipe.publish(key + "-other", "not ours")
                await pipe.execute()
            await all_in.wait()
        assert got == [str(n).encode() for n in range(500)]
    finally:
        conn.close()


async def test_a_lost_connection_is_said_and_fails_what_waits(
    client: aioredis.Redis, key: str
) -> None:
    conn = await RespConnection.open(REDIS_URL, name="cg-test-" + key)
    try:
        waiting = asyncio.ensure_future(conn.execute([("BLPOP", key, "0")]))  # waits for ever
        async with asyncio.timeout(timeout()):
            (ours,) = [c for c in await client.client_list() if c["name"] == "cg-test-" + key]
            await client.client_kill_filter(_id=ours["id"])
            await conn.lost
            with pytest.raises(RedisConnectionError, match=r"closed by Redis|lost"):
                await waiting
        with pytest.raises(RedisConnectionError):
            await conn.execute([("PING",)])
    finally:
        conn.close()


async def test_nothing_listening_is_a_connection_error() -> None:
    from tests.live.test_fanout_redis import closed_port_url

    with pytest.raises(RedisConnectionError, match="cannot connect to Redis"):
        async with asyncio.timeout(timeout()):
            await RespConnection.open(closed_port_url())
