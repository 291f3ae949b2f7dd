"""CachedDirectory: a TTL cache in front of any directory, plus what aiocache lacks.

- **Single-flight** (the gateway's only one): N concurrent lookups of one number run one inner
  lookup; the others wait for it (``coalesced``). The inner lookup runs in its own task, so a
  caller that gives up (the pipeline's deadline) does not cancel it: it still completes into the
  cache. A failed inner lookup is logged once, here, however many calls shared it.
- **Negative caching**: a number that matches nothing is cached too, for ``negative_ttl``. Values
  are stored encoded (JSON text): an empty Findings is never the ``None`` aiocache reads as a miss.
- **A size bound**: at most ``max_size`` numbers, least recently used out first.
- **Invalidation** by number and by CRM entity: an index ``(kind, id) -> numbers`` is kept in the
  same cache backend, so with a shared backend (Redis) any process can invalidate what another
  cached. A lookup in flight when an invalidation arrives is not stored.

The backend is any aiocache cache: ``SimpleMemoryCache`` now, ``redis_cache(url)`` by configuration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from functools import partial
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from aiocache import RedisCache, SimpleMemoryCache
from aiocache.base import BaseCache
from aiocache.serializers import StringSerializer

from gateway.crm import KINDS, Directory, DirectoryError
from gateway.crm import metrics as m
from gateway.crm.budget import LANE, Lane, current_lane
from gateway.crm.dataset import Dataset
from gateway.crm.index import EntityIndex, MemoryIndex, RedisIndex
from gateway.crm.statusfield import RestAccess
from gateway.run.refusals import RefusalLog
from rules.model import Company, Contact, Findings, Lead
from rules.phones import masked

log = logging.getLogger("callguard.directory")

FAILED_LOG_EVERY = 10.0  # seconds between two lines about failed lookups


class CachedDirectory:
    def __init__(
        self,
        inner: Directory,
        *,
        cache: BaseCache | None = None,
        ttl: float = 300.0,
        negative_ttl: float = 60.0,
        max_size: int = 10_000,
    ) -> None:
        self.inner = inner
        self.cache: BaseCache = cache if cache is not None else SimpleMemoryCache()
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_size = max_size
        redis = getattr(self.cache, "client", None)
        self.index: EntityIndex = (
            RedisIndex(redis, self.cache.namespace or "") if redis is not None else MemoryIndex()
        )
        # In-process backend only: the decoded findings of the numbers this process stored, so a
        # warm call costs a dict read, not aiocache's get (~40 us), a JSON decode (~17 us) and a
        # single-flight task (~70 us). A shared (Redis) backend keeps no such copy: another
        # process may invalidate an entry, and only Redis would know.
        self._near: dict[str, tuple[float, Findings]] | None = {} if redis is None else None
        self._inflight: dict[str, asyncio.Task[Findings]] = {}
        self._failures = RefusalLog(FAILED_LOG_EVERY)  # when to log a failed lookup
        self._lanes: dict[asyncio.Task[Findings], Lane | None] = {}  # each lookup's budget lane
        self._recent: OrderedDict[str, None] = OrderedDict()  # numbers this process cached, LRU

    def held(self, phone: str) -> Findings | None:
        """The findings of ``phone`` if this process holds them decoded and fresh (a cache hit);
        else None. With a shared backend nothing is held."""
        if self._near is None or (near := self._near.get(phone)) is None:
            return None
        if near[0] <= time.monotonic():
            del self._near[phone]
            return None
        m.cache_hits.inc()
        return near[1]

    async def lookup(self, phone: str) -> Findings:
        held = self.held(phone)
        if held is not None:
            return held
        task = self._inflight.get(phone)
        if task is not None:
            m.coalesced.inc()
            lane = self._lanes.get(task)
            if lane is not None and current_lane().live:
                lane.promote()  # a live call waits for this pre-warm now: it goes first
            return await asyncio.shield(task)
        # Ordering rule: register the in-flight task BEFORE any await. A caller arriving while
        # this one awaits (the cache, the portal) must find it, or one number gets two lookups.
        task = asyncio.ensure_future(self._load(phone))
        self._inflight[phone] = task
        self._lanes[task] = LANE.get()  # the task's lane (it runs in a copy of our context)
        task.add_done_callback(partial(self._done, phone))
        return await asyncio.shield(task)

    def _done(self, phone: str, task: asyncio.Task[Findings]) -> None:
        self._lanes.pop(task, None)
        if self._inflight.get(phone) is task:
            del self._inflight[phone]
        if task.cancelled():
            return
        # Retrieved here, as nobody may be left waiting for it: one log line per failed lookup.
        err = task.exception()
        if isinstance(err, DirectoryError):
            # One line per failed lookup, but not a line per call of a flood: one user's tab
            # calling new numbers past its share of the portal's budget fails each at once
            # (bench/abuse.py rest-drain: 57 lines in 8 s). The rest are counted here and in
            # callguard_lookups_total{outcome="error"}.
            count = self._failures.note("failed", time.monotonic())
            if not count:
                return
            more = f" ({count - 1} more failed since the last such line)" if count > 1 else ""
            log.warning("lookup of %s failed, painting none: %s%s", masked(phone), err, more)
        elif err is not None:
            log.error("lookup of %s crashed, painting none", masked(phone), exc_info=err)

    async def _load(self, phone: str) -> Findings:
        raw = await self._get(_key(phone))
        cached = _readable(raw)
        if cached is not None:
            m.cache_hits.inc()
            self._touch(phone)
            # With a shared (Redis) cache a hit may be a number another process stored: keep
            # this process's recency list bounded, but leave the entry to its owner and its TTL.
            while len(self._recent) > self.max_size:
                self._recent.popitem(last=False)
            return cached
        m.cache_misses.inc()
        generation = await self._generation()  # before the source is asked
        findings = await self.inner.lookup(phone)
        if await self._overtaken(generation, findings, phone):
            # A change of something it holds was handled meanwhile (here or in another
            # process): its callers would paint the old colour. Once more, from the new data.
            generation = await self._generation()
            findings = await self.inner.lookup(phone)
        # Every invalidation in this process unregisters the lookups it overtakes
        # (invalidate_phone pops one, invalidate_entity and clear drop all): only a lookup still
        # registered may store. One in another process is caught by the index's marks.
        if self._inflight.get(phone) is asyncio.current_task():
            await self._store(phone, findings, generation)
        return findings

    async def _generation(self) -> int:
        try:
            return await self.index.generation()
        except Exception as err:
            log.warning("cache index read failed: %s", err)
            return -1  # unknown: the entry is not stored

    async def _overtaken(self, generation: int, findings: Findings, phone: str) -> bool:
        try:
            held = [*entities(findings), ("phone", phone)]
            return generation >= 0 and await self.index.changed_since(generation, held)
        except Exception as err:
            log.warning("cache index read failed: %s", err)
            return False

    async def _store(self, phone: str, findings: Findings, generation: int) -> None:
        ttl = self.negative_ttl if findings.empty else self.ttl
        if ttl <= 0 or generation < 0:
            return
        held = [*entities(findings), ("phone", phone)]
        try:
            # The index first: a change that pops it from now on finds this number.
            await self.index.add(phone, held[:-1], ttl=self.ttl * 2 + 60)
            await self.cache.set(_key(phone), encode(findings), ttl=ttl)
            overtaken = await self.index.changed_since(generation, held)
        except Exception as err:  # a cache that fails must not fail the lookup
            log.warning("cache write for %s failed: %s", masked(phone), err)
            overtaken = True
        if overtaken or self._inflight.get(phone) is not asyncio.current_task():
            await self._delete(_key(phone))  # a change overtook this lookup: not its colour
            return
        if self._near is not None:
            self._near[phone] = (time.monotonic() + ttl, findings)
        self._touch(phone)
        while len(self._recent) > self.max_size:
            oldest, _ = self._recent.popitem(last=False)
            self._forget_near(oldest)
            await self._delete(_key(oldest))

    def _forget_near(self, phone: str) -> None:
        if self._near is not None:
            self._near.pop(phone, None)

    def _touch(self, phone: str) -> None:
        self._recent[phone] = None
        self._recent.move_to_end(phone)

    async def _get(self, key: str) -> Any:
        try:
            return await self.cache.get(key)
        except Exception as err:
            log.warning("cache read of %s failed: %s", key, err)
            return None

    async def _delete(self, key: str) -> None:
        try:
            await self.cache.delete(key)
        except Exception as err:
            log.warning("cache delete of %s failed: %s", key, err)

    # -- what the source declares, and changes ----------------------------------------------
    @property
    def dataset(self) -> Dataset | None:
        return self.inner.dataset

    @property
    def rest(self) -> RestAccess | None:
        return self.inner.rest

    async def changed(self, kind: str, entity_id: str, deleted: bool) -> set[str]:
        """Drop every cached number the entity showed in (the index: its old numbers) and every
        number it has now (a new phone may sit here as "nothing found"); returns them all."""
        old = await self.invalidate_entity(kind, entity_id)
        try:
            new = await self.inner.changed(kind, entity_id, deleted)
        except DirectoryError as err:
            # The numbers it had are dropped already: return them, so that open calls are
            # decided again. Only a number it gained may keep "nothing found" (negative TTL).
            log.warning("%s %s: its current numbers not read: %s", kind, entity_id, err)
            return old
        for phone in new - old:
            await self.invalidate_phone(phone)
        return old | new

    # -- invalidation ------------------------------------------------------------------------
    async def invalidate_phone(self, phone: str) -> None:
        """Forget ``phone`` (an E.164 key): the next lookup asks the source."""
        self._inflight.pop(phone, None)
        self._recent.pop(phone, None)
        self._forget_near(phone)
        await self._mark([("phone", phone)])
        await self._delete(_key(phone))

    async def _mark(self, held: list[tuple[str, str]]) -> None:
        try:
            await self.index.mark(held)
        except Exception as err:
            log.warning("cache index mark failed: %s", err)

    async def invalidate_entity(self, kind: str, ident: str | int) -> set[str]:
        """Forget every cached number whose findings hold this lead/contact/company (directly or
        as a linked company); returns those numbers. A new entity or a new phone is not in the
        index yet: invalidate its numbers with :meth:`invalidate_phone`."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        # Lookups in flight may hold the entity: none of them is joined or stored any more.
        self._inflight.clear()
        await self._mark([(kind, str(ident))])  # before the pop: see index.py
        try:
            phones = await self.index.pop(kind, str(ident))
        except Exception as err:
            log.warning("cache index read failed: %s", err)
            phones = set()
        for phone in phones:
            self._recent.pop(phone, None)
            self._forget_near(phone)
            await self._delete(_key(phone))
        return phones

    async def phones_for(self, kind: str, ident: str | int) -> set[str]:
        """The cached numbers whose findings hold this entity (e.g. a company's numbers)."""
        return await self.index.peek(kind, str(ident))

    async def clear(self) -> None:
        self._inflight.clear()
        self._recent.clear()
        if self._near is not None:
            self._near.clear()
        await self.index.mark([])  # every lookup in flight is overtaken
        await self.index.clear()
        await self.cache.clear()

    def health(self) -> dict[str, object]:
        return {**self.inner.health(), "cached": len(self._recent), "inflight": len(self._inflight)}

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        self._inflight.clear()
        await self.inner.close()
        client = getattr(self.cache, "client", None)
        if client is not None and hasattr(client, "aclose"):
            # aiocache 0.12's RedisCache.close() calls redis' deprecated client.close() and
            # leaves the connection pool it built open: close both the redis>=5 way.
            await client.aclose()
            await client.connection_pool.disconnect()
        else:
            await self.cache.close()


def redis_cache(url: str, namespace: str = "callguard:directory:") -> BaseCache:
    """An aiocache Redis backend from ``redis://[:password@]host[:port][/db]``."""
    parts = urlsplit(url)
    db = parts.path.strip("/")
    return RedisCache(
        serializer=StringSerializer(),
        namespace=namespace,
        endpoint=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        db=int(db) if db.isdigit() else 0,
        password=unquote(parts.password) if parts.password else None,
    )


def entities(findings: Findings) -> list[tuple[str, str]]:
    found = [("lead", x.id) for x in findings.leads] + [
        ("contact", x.id) for x in findings.contacts
    ]
    return found + [("company", x.id) for x in findings.all_companies]


def encode(findings: Findings) -> str:
    return orjson.dumps(findings.to_dict()).decode()


def decode(raw: str | bytes) -> Findings:
    doc = orjson.loads(raw)
    return Findings(
        phone=doc["phone"],
        leads=tuple(Lead(**x) for x in doc["leads"]),
        contacts=tuple(
            Contact(**{**x, "company_ids": tuple(x["company_ids"])}) for x in doc["contacts"]
        ),
        companies=tuple(Company(**x) for x in doc["companies"]),
        linked_companies=tuple(Company(**x) for x in doc["linked_companies"]),
    )


def _readable(raw: str | bytes | None) -> Findings | None:
    """A cached entry, or None for a miss. An entry this version cannot read (written by another
    gateway version sharing a Redis cache) is a miss, so the number is looked up afresh instead
    of failing every call to it until the entry expires."""
    if raw is None:
        return None
    try:
        return decode(raw)
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("ignoring a cache entry this version cannot read; looking the number up again")
        return None


def _key(phone: str) -> str:
    return f"f:{phone}"
