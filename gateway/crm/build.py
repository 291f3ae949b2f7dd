"""build_directory(settings): the one place that chooses where CRM data comes from.

``CALLGUARD_PORTAL_URL`` set -> Bitrix24 REST; unset -> the data file (``CALLGUARD_DIRECTORY``, or
the bundled demo). Either way behind the cache: in memory, or in Redis with
``CALLGUARD_CACHE=redis`` (shared by every process). With ``CALLGUARD_REDIS_URL`` set, the
portal's request budget is shared by every process too (budgetredis.py). Close it with
``await directory.close()``: that closes the portal session, the budget's Redis and the cache.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiocache.base import BaseCache
from redis.asyncio import Redis

from gateway.crm import Directory
from gateway.crm.budgetredis import RedisLevel
from gateway.crm.cache import CachedDirectory, redis_cache
from gateway.crm.client import BitrixClient, Limits
from gateway.crm.datafile import DataFileDirectory
from gateway.crm.dataset import DataFileError, load_dataset
from gateway.crm.rest import BitrixDirectory
from gateway.run.config import ConfigError, Settings


def source_directory(settings: Settings) -> Directory:
    """The uncached source: REST when a portal is configured, else the data file."""
    if settings.portal_url is None:
        try:
            data = load_dataset(settings.directory)
        except DataFileError as err:
            raise ConfigError(f"CALLGUARD_DIRECTORY: {err}") from None
        return DataFileDirectory(data, settings.region)
    limits = Limits(
        rate_burst=settings.rate_burst,
        rate_per_second=settings.rate_per_second,
        rate_reserve=settings.rate_reserve,
        user_share=settings.user_rate_share,  # where a lookup carries its user (live calls)
    )
    level = None
    if settings.redis_url is not None:
        # Bitrix counts per portal and source IP: every process shares one bucket.
        host = urlsplit(settings.portal_url).netloc.rpartition("@")[2]
        key = f"{settings.redis_prefix}rest-budget:{host}"
        redis = Redis.from_url(settings.redis_url)
        level = RedisLevel(redis, key, settings.rate_burst, settings.rate_per_second)
    client = BitrixClient(settings.portal_url, limits, level=level)
    return BitrixDirectory(
        client,
        settings.status_field,
        settings.region,
        deadline=settings.lookup_deadline,
        enum_ttl=settings.cache_ttl,
    )


def build_directory(settings: Settings, *, cache: BaseCache | None = None) -> CachedDirectory:
    """The source behind the lookup cache; raises :class:`ConfigError` naming the variable.
    ``cache`` overrides the backend the settings choose (tests give each run its namespace)."""
    if cache is None and settings.cache_backend == "redis" and settings.redis_url is not None:
        cache = redis_cache(settings.redis_url)
    return CachedDirectory(
        source_directory(settings),
        cache=cache,
        ttl=settings.cache_ttl,
        negative_ttl=settings.negative_ttl,
        max_size=settings.cache_size,
    )
