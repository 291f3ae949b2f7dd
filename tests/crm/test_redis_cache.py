"""The same cache on the real Redis at 127.0.0.1:6379: a backend swap, no code change."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.crm.build import build_directory
from gateway.crm.cache import CachedDirectory, redis_cache
from gateway.tools.fakeportal import FakePortal
from tests.crm.conftest import portal_settings, redis_processes
from tests.redis_server import require_redis

pytestmark = pytest.mark.redis
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def shared(fake_portal: FakePortal) -> AsyncIterator[tuple[CachedDirectory, CachedDirectory]]:
    """Two gateway processes' directories sharing one Redis namespace."""
    async with redis_processes(fake_portal) as (one, two):
        yield one, two


async def test_a_lookup_cached_by_one_process_is_warm_for_another(
    shared: tuple[CachedDirectory, CachedDirectory], fake_portal: FakePortal
) -> None:
    one, two = shared
    first = await one.lookup("+74951234567")
    fake_portal.reset_counters()
    assert await two.lookup("+74951234567") == first
    assert (await two.lookup("+79990000000")).empty  # negative entries too
    assert (await one.lookup("+79990000000")).empty
    assert fake_portal.requests == {"batch": 1}


async def test_an_entity_invalidated_by_one_process_is_gone_for_the_other(
    shared: tuple[CachedDirectory, CachedDirectory], fake_portal: FakePortal
) -> None:
    one, two = shared
    await one.lookup("+79160001122")  # contact 20 of company 10
    assert await two.phones_for("company", 10) == {"+79160001122"}
    assert await two.invalidate_entity("company", 10) == {"+79160001122"}
    fake_portal.reset_counters()
    await one.lookup("+79160001122")
    assert fake_portal.requests == {"batch": 2}


async def test_hits_on_numbers_another_process_stored_keep_the_size_bound(
    fake_portal: FakePortal,
) -> None:
    """A process that mostly hits entries others stored tracks at most its size bound, and
    evicts nothing of theirs."""
    require_redis()
    namespace = f"callguard-test-{uuid.uuid4().hex}:"
    settings = portal_settings(fake_portal)
    writer = build_directory(settings, cache=redis_cache(REDIS, namespace))
    reader = build_directory(settings.but(cache_size=2), cache=redis_cache(REDIS, namespace))
    phones = ["+74951234567", "+74952223344", "+79160001122", "+79161234567"]
    try:
        for phone in phones:
            await writer.lookup(phone)
        fake_portal.reset_counters()
        for phone in phones:
            await reader.lookup(phone)
        assert reader.health()["cached"] == 2
        assert fake_portal.total_requests == 0
        for phone in phones:  # still all there for everyone
            await writer.lookup(phone)
        assert fake_portal.total_requests == 0
    finally:
        await writer.cache.clear()
        await writer.close()
        await reader.close()
