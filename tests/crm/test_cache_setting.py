"""CALLGUARD_CACHE=redis moves the lookup cache to Redis by configuration alone."""

from __future__ import annotations

import pytest

from gateway.crm.cache import CachedDirectory
from gateway.run.config import ConfigError, Settings
from gateway.run.runtime import build_gateway
from gateway.tools.fakeportal import FakePortal
from tests.crm.conftest import portal_settings
from tests.redis_server import require_redis

# A database of its own, so entries never meet those of a developer's running gateway.
REDIS = "redis://127.0.0.1:6379/14"


def test_cache_setting_is_validated() -> None:
    secret = {"CALLGUARD_SECRET": "s" * 32}
    assert Settings.from_env(secret).cache_backend == "memory"
    with pytest.raises(ConfigError, match=r"^CALLGUARD_CACHE: must be memory or redis"):
        Settings.from_env({**secret, "CALLGUARD_CACHE": "disk"})
    with pytest.raises(ConfigError, match=r"^CALLGUARD_CACHE: 'redis' needs CALLGUARD_REDIS_URL"):
        Settings.from_env({**secret, "CALLGUARD_CACHE": "redis"})
    both = Settings.from_env({**secret, "CALLGUARD_CACHE": "Redis", "CALLGUARD_REDIS_URL": REDIS})
    assert (both.cache_backend, both.redis_url) == ("redis", REDIS)


@pytest.mark.redis
async def test_two_gateways_share_the_redis_cache(fake_portal: FakePortal) -> None:
    require_redis()
    settings = portal_settings(fake_portal, redis_url=REDIS, cache_backend="redis")
    one, two = build_gateway(settings), build_gateway(settings)
    assert isinstance(one.directory, CachedDirectory)
    assert isinstance(two.directory, CachedDirectory)
    await one.directory.clear()
    try:
        first = await one.directory.lookup("+74952223344")
        assert [c.id for c in first.companies] == ["11"]
        fake_portal.reset_counters()
        assert await two.directory.lookup("+74952223344") == first
        assert fake_portal.total_requests == 0
    finally:
        await one.directory.clear()
        await one.directory.close()
        await two.directory.close()
