"""Fixtures for tests against the fake Bitrix24 portal on loopback.

Other test packages reuse them with ``from tests.directory.conftest import fake_portal,
portal_settings  # noqa: F401`` in their own conftest.py.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.crm.build import build_directory
from gateway.crm.cache import CachedDirectory, redis_cache
from gateway.crm.dataset import Dataset, load_dataset
from gateway.run.config import Settings
from gateway.tools.fakeportal import FakePortal
from tests.redis_server import REDIS_URL, require_redis


def portal_settings(portal: FakePortal, **changes: object) -> Settings:
    """Settings pointing at ``portal``; the client-side rate limit is opened up unless given."""
    base = Settings(
        secret="s" * 32, portal_url=portal.webhook_url, rate_burst=100_000, rate_per_second=10_000.0
    )
    return base.but(**changes)


@contextlib.asynccontextmanager
async def redis_processes(portal: FakePortal) -> AsyncIterator[tuple[CachedDirectory, ...]]:
    """Two gateway processes' directories sharing one fresh Redis namespace."""
    require_redis()
    namespace = f"callguard-test-{uuid.uuid4().hex}:"
    settings = portal_settings(portal)
    one = build_directory(settings, cache=redis_cache(REDIS_URL, namespace))
    two = build_directory(settings, cache=redis_cache(REDIS_URL, namespace))
    try:
        yield one, two
    finally:
        await one.cache.clear()
        await one.close()
        await two.close()


@pytest.fixture
def demo_data() -> Dataset:
    return load_dataset()


@pytest.fixture
async def fake_portal(demo_data: Dataset) -> AsyncIterator[FakePortal]:
    """The demo data behind a fake portal, started on a free loopback port."""
    async with FakePortal(demo_data) as portal:
        yield portal


@pytest.fixture
async def rest_directory(fake_portal: FakePortal) -> AsyncIterator[CachedDirectory]:
    """``build_directory`` over ``fake_portal``: the REST directory behind the cache."""
    directory = build_directory(portal_settings(fake_portal))
    yield directory
    await directory.close()
