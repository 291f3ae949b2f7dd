"""build_directory(settings): the directory the gateway uses, from the settings.

``CALLGUARD_PORTAL_URL`` set -> Bitrix24 REST; unset -> the data file (``CALLGUARD_DIRECTORY``, or
the bundled demo). Either way behind the cache. The cache is in memory; pass
``cache=redis_cache(url)`` to share it between processes (configuration, not a code change).
Close it with ``await directory.close()``: that closes the portal session and the cache.
"""

from __future__ import annotations

from aiocache.base import BaseCache

from gateway.crm import Directory
from gateway.crm.cache import CachedDirectory
from gateway.crm.client import BitrixClient, Limits
from gateway.crm.datafile import DataFileDirectory, load_dataset
from gateway.crm.rest import BitrixDirectory
from gateway.run.config import Settings


def source_directory(settings: Settings) -> Directory:
    """The uncached source: REST when a portal is configured, else the data file."""
    if settings.portal_url is None:
        return DataFileDirectory(load_dataset(settings.directory), settings.region)
    limits = Limits(rate_burst=settings.rate_burst, rate_per_second=settings.rate_per_second)
    client = BitrixClient(settings.portal_url, limits)
    return BitrixDirectory(
        client,
        settings.status_field,
        settings.region,
        deadline=settings.lookup_deadline,
        enum_ttl=settings.cache_ttl,
    )


def build_directory(settings: Settings, *, cache: BaseCache | None = None) -> CachedDirectory:
    return CachedDirectory(
        source_directory(settings),
        cache=cache,
        ttl=settings.cache_ttl,
        negative_ttl=settings.negative_ttl,
        max_size=settings.cache_size,
    )
