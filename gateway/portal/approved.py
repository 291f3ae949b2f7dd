"""Where the last approved status of each company is kept (the status lifecycle's memory).

The statuses live in the database (``CALLGUARD_DATABASE_URL``, gateway/store/): they survive
restarts and deploys, and PostgreSQL shares them between processes and hosts. Redis keeps only
what may be lost: with ``CALLGUARD_REDIS_URL`` set, a short Redis lock keeps two processes from
judging one company at the same time; without it, an in-process lock does that for one process.

An empty string is a recorded "no status"; ``None`` from :meth:`get` means "no record".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import LockError, LockNotOwnedError

from gateway.store.approved import ApprovedStatuses
from gateway.store.database import Database

log = logging.getLogger("callguard.statuses")

KEY = "callguard:approved-status"
LOCK_PREFIX = "callguard:status-lock:"
# A judgement is a few REST calls of up to 10 s each: the lock outlives a slow one, and expires
# on its own if a process dies holding it.
LOCK_SECONDS = 60.0
LOCK_WAIT = 65.0


class ApprovedStore(Protocol):
    async def get(self, company_id: str) -> str | None: ...

    async def set(self, company_id: str, status: str) -> None: ...

    async def set_default(self, company_id: str, status: str) -> bool:
        """Record ``status`` unless a record exists; True if it was recorded."""
        ...

    async def forget(self, company_id: str) -> None: ...

    def lock(self, company_id: str) -> AbstractAsyncContextManager[None]:
        """Held while one company's change is judged, so judgements of it never interleave."""
        ...

    async def close(self) -> None: ...


class LocalLocks:
    """One asyncio lock per company, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, company_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(company_id, asyncio.Lock())
        self._users[company_id] = self._users.get(company_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[company_id] -= 1
            if not self._users[company_id]:
                del self._users[company_id], self._locks[company_id]


class MemoryStore:
    """Statuses in the process only: the tests of the pure lifecycle (gateway/portal/statuses)."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._locks = LocalLocks()

    async def get(self, company_id: str) -> str | None:
        return self._values.get(company_id)

    async def set(self, company_id: str, status: str) -> None:
        self._values[company_id] = status

    async def set_default(self, company_id: str, status: str) -> bool:
        if company_id in self._values:
            return False
        self._values[company_id] = status
        return True

    async def forget(self, company_id: str) -> None:
        self._values.pop(company_id, None)

    def lock(self, company_id: str) -> AbstractAsyncContextManager[None]:
        return self._locks.hold(company_id)

    async def close(self) -> None:
        return None


class RedisLocks:
    """A Redis lock per company, shared by every gateway process on the same Redis."""

    def __init__(self, url: str, key: str = KEY, lock_seconds: float = LOCK_SECONDS) -> None:
        self.key = key
        self.lock_seconds = lock_seconds
        self._redis: aioredis.Redis = aioredis.from_url(url, decode_responses=True)
        self._locks = LocalLocks()

    @asynccontextmanager
    async def hold(self, company_id: str) -> AsyncIterator[None]:
        # The local lock first: waiters in this process queue on it instead of polling Redis.
        async with self._locks.hold(company_id):
            lock = self._redis.lock(
                LOCK_PREFIX + self.key + ":" + company_id,
                timeout=self.lock_seconds,
                blocking_timeout=self.lock_seconds + LOCK_WAIT - LOCK_SECONDS,
            )
            if not await lock.acquire():
                raise LockError(f"status lock of company {company_id} not acquired in time")
            try:
                yield
            finally:
                try:
                    await lock.release()
                except LockNotOwnedError:
                    # The judgement outlived the lock (a slow portal): it is done all the same;
                    # another process may have judged the company meanwhile.
                    log.warning(
                        "status lock of company %s expired before its judgement finished",
                        company_id,
                    )

    async def close(self) -> None:
        await self._redis.aclose()


class DatabaseStore:
    """Approved statuses in the database, judgements serialised by a Redis or local lock."""

    def __init__(self, statuses: ApprovedStatuses, locks: LocalLocks | RedisLocks) -> None:
        self.statuses = statuses
        self.locks = locks

    async def get(self, company_id: str) -> str | None:
        return await self.statuses.get(company_id)

    async def set(self, company_id: str, status: str) -> None:
        await self.statuses.set(company_id, status)

    async def set_default(self, company_id: str, status: str) -> bool:
        return await self.statuses.set_default(company_id, status)

    async def forget(self, company_id: str) -> None:
        await self.statuses.forget(company_id)

    def lock(self, company_id: str) -> AbstractAsyncContextManager[None]:
        return self.locks.hold(company_id)

    async def close(self) -> None:
        # The database belongs to the gateway (the ledger shares it); only the lock is ours.
        if isinstance(self.locks, RedisLocks):
            await self.locks.close()


def open_store(database: Database, redis_url: str | None) -> ApprovedStore:
    locks = RedisLocks(redis_url) if redis_url else LocalLocks()
    return DatabaseStore(ApprovedStatuses(database), locks)
