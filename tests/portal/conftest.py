"""Fixtures for the portal-integration tests: Redis, fresh data files, the settings they share."""

import os
import socket
import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.approved import RedisStore

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_url() -> str:
    if not _redis_up():
        if os.environ.get("CI"):
            pytest.fail("Redis is not running at 127.0.0.1:6379 (.ci/run starts it)")
        pytest.skip("Redis is not running at 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture
def store_key() -> str:
    """A Redis key of this test's own, so runs never see each other's statuses."""
    return f"callguard:test:{uuid.uuid4().hex}"


@pytest.fixture
async def redis_store(redis_url: str, store_key: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_url, key=store_key)
    yield store
    await store._redis.delete(store_key)
    await store.close()
