"""Who may see whose calls in the report and the digest.

Administrators (``CALLGUARD_ADMINS``, plus the data file's ``"admin": true`` users) see every
call. A head sees the calls made by users of the departments they head and of every department
below them. Anyone else sees nothing (:class:`Forbidden`, HTTP 403).

The department tree and its members come from an :class:`OrgChart` (the data file, or the
portal over REST); answers are cached for :data:`CACHE_SECONDS`, so a report page does not cost
a walk of the portal's tree each time.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from typing import Protocol

from gateway.portal.statuses import MAX_DEPTH, Department

CACHE_SECONDS = 60.0
MAX_CACHED = 10_000  # users whose answer is cached; more clears the cache


class Forbidden(Exception):
    """The user is neither an administrator nor a department head."""


class OrgChart(Protocol):
    async def departments(self) -> dict[str, Department]:
        """Every department, by id."""
        ...

    async def members(self, department_ids: Collection[str]) -> dict[str, str]:
        """User id -> name of the users in any of these departments."""
        ...

    async def names(self, user_ids: Collection[str]) -> dict[str, str]: ...

    async def notify(self, user_id: str, message: str) -> None: ...


def below(roots: Collection[str], departments: Mapping[str, Department]) -> set[str]:
    """``roots`` and every department under them (a broken tree stops at :data:`MAX_DEPTH`)."""
    children: dict[str, list[str]] = {}
    for dep in departments.values():
        if dep.parent is not None:
            children.setdefault(dep.parent, []).append(dep.id)
    found = set(roots)
    level = list(roots)
    for _ in range(MAX_DEPTH):
        level = [c for d in level for c in children.get(d, ()) if c not in found]
        if not level:
            break
        found.update(level)
    return found


def headed_by(user_id: str, departments: Mapping[str, Department]) -> set[str]:
    """The departments ``user_id`` heads, and every department below them."""
    return below([d.id for d in departments.values() if d.head == user_id], departments)


def heads(departments: Mapping[str, Department]) -> set[str]:
    return {d.head for d in departments.values() if d.head}


class Access:
    def __init__(
        self, org: OrgChart | None, admins: Collection[str], ttl: float = CACHE_SECONDS
    ) -> None:
        self.org = org
        self.admins = frozenset(admins)
        self.ttl = ttl
        self._tree: tuple[float, dict[str, Department]] | None = None
        self._seen: dict[str, tuple[float, bool, frozenset[str]]] = {}

    async def tree(self) -> dict[str, Department]:
        if self.org is None:
            return {}
        now = time.monotonic()
        if self._tree is None or self._tree[0] <= now:
            self._tree = (now + self.ttl, await self.org.departments())
        return self._tree[1]

    async def callers(self, user_id: str) -> frozenset[str] | None:
        """Whose calls ``user_id`` may see: None for everyone's; raises :class:`Forbidden`."""
        if user_id in self.admins:
            return None
        now = time.monotonic()
        cached = self._seen.get(user_id)
        if cached is None or cached[0] <= now:
            own = headed_by(user_id, await self.tree())
            members = await self.org.members(own) if own and self.org is not None else {}
            if len(self._seen) >= MAX_CACHED:
                self._seen.clear()
            cached = self._seen[user_id] = (now + self.ttl, bool(own), frozenset(members))
        if not cached[1]:
            raise Forbidden(f"user {user_id} is neither an administrator nor a department head")
        return cached[2]

    async def names(self, user_ids: Collection[str]) -> dict[str, str]:
        if self.org is None or not user_ids:
            return {}
        return await self.org.names(user_ids)
