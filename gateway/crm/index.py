"""Which cached numbers a CRM entity showed up in, kept so that no number keeps a stale colour.

The cache asks, for every number it stores, to :meth:`add` it under each lead, contact and
company its findings hold; a change of an entity :meth:`pop` s them (atomically: the set is read
and deleted in one step) and the cache drops those entries. Kept in Redis next to the entries
(shared by every process) or in this process, with the same rules:

- **No read-modify-write.** A number joins a set with ``SADD``; concurrent lookups never drop
  each other's numbers. Each set expires ``ttl`` after its last addition, and the cache gives a
  ``ttl`` longer than its entries', so the index outlives what it points at.
- **Lookups overtaken by a change.** A lookup reads :meth:`generation` before it asks the
  source; a change :meth:`mark` s the entity (and a number, for a new phone) with a new
  generation *before* popping its numbers. A lookup stores its entry after adding it to the
  index, then asks :meth:`changed_since`: if anything it holds was marked after it began, it
  deletes its own entry. Either the change's pop finds the number, or the lookup sees the mark.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Protocol

Entity = tuple[str, str]  # (kind, id); kind "phone" marks a number
MARK_TTL = 600  # seconds a change's mark is kept: longer than any lookup can be in flight


class EntityIndex(Protocol):
    async def add(self, phone: str, entities: Iterable[Entity], ttl: float) -> None: ...

    async def pop(self, kind: str, ident: str) -> set[str]: ...

    async def peek(self, kind: str, ident: str) -> set[str]: ...

    async def generation(self) -> int: ...

    async def mark(self, entities: Iterable[Entity]) -> None: ...

    async def changed_since(self, generation: int, entities: Iterable[Entity]) -> bool: ...

    async def clear(self) -> None: ...


class MemoryIndex:
    def __init__(self) -> None:
        self._sets: dict[Entity, tuple[set[str], float]] = {}
        self._marks: dict[Entity, tuple[int, float]] = {}
        self._generation = 0
        self._adds = 0

    async def add(self, phone: str, entities: Iterable[Entity], ttl: float) -> None:
        now = time.monotonic()
        for entity in entities:
            phones, until = self._sets.get(entity, (set(), 0.0))
            if until < now:
                phones = set()
            phones.add(phone)
            self._sets[entity] = (phones, now + ttl)
        self._adds += 1
        if self._adds % 1000 == 0:  # bounded: expired sets and marks go now and then
            self._sets = {e: v for e, v in self._sets.items() if v[1] >= now}
            self._marks = {e: v for e, v in self._marks.items() if v[1] >= now}

    async def pop(self, kind: str, ident: str) -> set[str]:
        phones, until = self._sets.pop((kind, ident), (set(), 0.0))
        return phones if until >= time.monotonic() else set()

    async def peek(self, kind: str, ident: str) -> set[str]:
        phones, until = self._sets.get((kind, ident), (set(), 0.0))
        return set(phones) if until >= time.monotonic() else set()

    async def generation(self) -> int:
        return self._generation

    async def mark(self, entities: Iterable[Entity]) -> None:
        self._generation += 1
        until = time.monotonic() + MARK_TTL
        for entity in entities:
            self._marks[entity] = (self._generation, until)

    async def changed_since(self, generation: int, entities: Iterable[Entity]) -> bool:
        if self._generation == generation:
            return False
        marks = (self._marks.get(e) for e in entities)
        return any(m is not None and m[0] > generation for m in marks)

    async def clear(self) -> None:
        self._sets.clear()
        self._marks.clear()


class RedisIndex:
    """Sets ``<ns>ixs:<kind>:<id>``, marks ``<ns>inv:<kind>:<id>``, the counter ``<ns>gen``
    (``ixs:``: the JSON-list ``ix:`` keys of older versions would be the wrong Redis type)."""

    def __init__(self, redis: Any, namespace: str) -> None:
        self.redis = redis
        self.ns = namespace

    def _set(self, kind: str, ident: str) -> str:
        return f"{self.ns}ixs:{kind}:{ident}"

    def _mark(self, entity: Entity) -> str:
        return f"{self.ns}inv:{entity[0]}:{entity[1]}"

    async def add(self, phone: str, entities: Iterable[Entity], ttl: float) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for kind, ident in entities:
                key = self._set(kind, ident)
                pipe.sadd(key, phone)
                pipe.expire(key, max(1, int(ttl)))
            await pipe.execute()

    async def pop(self, kind: str, ident: str) -> set[str]:
        key = self._set(kind, ident)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.smembers(key)
            pipe.delete(key)
            members, _ = await pipe.execute()
        return {_text(p) for p in members}

    async def peek(self, kind: str, ident: str) -> set[str]:
        return {_text(p) for p in await self.redis.smembers(self._set(kind, ident))}

    async def generation(self) -> int:
        return int(await self.redis.get(f"{self.ns}gen") or 0)

    async def mark(self, entities: Iterable[Entity]) -> None:
        generation = await self.redis.incr(f"{self.ns}gen")
        async with self.redis.pipeline(transaction=True) as pipe:
            for entity in entities:
                pipe.set(self._mark(entity), generation, ex=MARK_TTL)
            await pipe.execute()

    async def changed_since(self, generation: int, entities: Iterable[Entity]) -> bool:
        if await self.generation() == generation:
            return False
        keys = [self._mark(e) for e in entities]
        marks = await self.redis.mget(keys) if keys else []
        return any(m is not None and int(m) > generation for m in marks)

    async def clear(self) -> None:
        pass  # the cache's clear() empties its namespace, index included


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
