"""The embedded directory: a data file (:mod:`gateway.crm.dataset`) held in memory.

``findings_for`` is the reference: a plain scan of the data, what every other directory (the
phone index here, the REST lookup) must equal.

Used by the demo, small teams and tests. Stored phones are matched through ``rules.normalize``.
"""

from __future__ import annotations

import asyncio

from gateway.crm.dataset import Dataset
from gateway.crm.phoneindex import PhoneIndex, assemble
from rules.model import Findings
from rules.phones import DEFAULT_REGION, try_normalize


def findings_for(data: Dataset, phone: str, region: str = DEFAULT_REGION) -> Findings:
    """Everything in ``data`` whose phone normalises to ``phone`` (an E.164 key)."""

    def matches(phones: list[str]) -> bool:
        return any(try_normalize(p, region) == phone for p in phones)

    return assemble(
        data,
        phone,
        [x for x in data.leads.values() if matches(x.phones)],
        [x for x in data.contacts.values() if matches(x.phones)],
        [x for x in data.companies.values() if matches(x.phones)],
        data.contact_companies,
    )


class DataFileDirectory:
    """The :class:`gateway.crm.Directory` over an in-memory data file.

    Lookups go through a phone index (phoneindex.py): built once, in a thread, on the first
    lookup (or by :meth:`load`), linear in the records; a change re-indexes that entity only.
    """

    def __init__(self, data: Dataset, region: str = DEFAULT_REGION) -> None:
        self.data = data
        self.region = region
        self._index: PhoneIndex | None = None
        self._loading: asyncio.Future[PhoneIndex] | None = None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # built on first use (the CLI, sync tests)
        self._start()  # built by the time the first call comes, in most cases

    def _start(self) -> asyncio.Future[PhoneIndex]:
        if self._loading is None:
            work = asyncio.to_thread(PhoneIndex, self.data, self.region)
            self._loading = asyncio.ensure_future(work)
        return self._loading

    async def load(self) -> PhoneIndex:
        """The index; built off the event loop (a large file takes seconds), once."""
        if self._index is not None:
            return self._index
        index = await asyncio.shield(self._start())
        self._index = index
        return index

    def reindex(self) -> None:
        """Index everything again, now (the data was replaced wholesale)."""
        self._index, self._loading = PhoneIndex(self.data, self.region), None

    def find(self, phone: str) -> Findings:
        if self._index is None:
            self.reindex()
        assert self._index is not None
        return self._index.find(phone)

    @property
    def dataset(self) -> Dataset:
        return self.data

    @property
    def rest(self) -> None:
        return None

    def held(self, phone: str) -> None:
        return None  # behind the cache, which holds what it looked up

    async def lookup(self, phone: str) -> Findings:
        return (await self.load()).find(phone)

    async def changed(self, kind: str, entity_id: str, deleted: bool) -> set[str]:
        """The data was edited in place (the demo's status panel): index that entity again and
        return the numbers whose lookups may differ (for a company, its contacts' and leads')."""
        return (await self.load()).update(kind, entity_id)

    def health(self) -> dict[str, object]:
        loading = self._index is None and self._loading is not None
        return {
            "ok": True,
            "source": "datafile",
            "reason": None,
            "file": self.data.source,
            "indexed": self._index is not None,
            "loading": loading,
        }

    async def close(self) -> None:
        return None
