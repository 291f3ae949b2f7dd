"""Where CRM data comes from: one protocol, several sources.

A *directory* answers "what matches this phone key" with :class:`rules.Findings`. The rules never
know whether the data came from the embedded data file or from a Bitrix24 portal. Besides
lookups, a directory declares what it is backed by, so that the gateway wires the status guard
and the demo without asking which class sits behind the cache:

- ``dataset``: the data file it reads (the embedded directory), else None;
- ``rest``: the portal's REST client and status field (the REST directory), else None.

Exceptions::

    DirectoryError            a directory could not answer
     └── BitrixError          (gateway.crm.client) the portal gave no usable answer
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from rules.model import Findings

if TYPE_CHECKING:
    from gateway.crm.dataset import Dataset
    from gateway.crm.statusfield import RestAccess

KINDS = ("lead", "contact", "company")


class Directory(Protocol):
    async def lookup(self, phone: str) -> Findings:
        """Everything that matches ``phone`` (an E.164 key from ``rules.normalize``)."""
        ...

    def held(self, phone: str) -> Findings | None:
        """What :meth:`lookup` would answer for ``phone`` if this process holds it in memory
        now, else None: a call decided from it waits for nothing (no deadline, no budget)."""
        ...

    async def changed(self, kind: str, entity_id: str, deleted: bool) -> set[str]:
        """The CRM changed a lead, contact or company: forget what was derived from it and
        return the phone keys whose lookups may now differ (the entity's numbers, and for a
        company those of its contacts and leads)."""
        ...

    @property
    def dataset(self) -> Dataset | None:
        """The data file this directory reads, if it reads one."""
        ...

    @property
    def rest(self) -> RestAccess | None:
        """The portal's REST client and status field, if this directory reads a portal."""
        ...

    def health(self) -> dict[str, object]:
        """``{"ok": bool, "source": str, "reason": str | None, ...}`` for ``/healthz``."""
        ...

    async def close(self) -> None: ...


class DirectoryError(Exception):
    """A directory could not answer (the CRM failed, a file is malformed, ...)."""
