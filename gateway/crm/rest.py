"""BitrixDirectory: the :class:`Directory` over a Bitrix24 portal's REST API.

A cold lookup costs two HTTP requests, one when nothing matches (lookup.py). It speaks
``crm.item.*`` and falls back to the classic methods on portals without them (dialect.py).
"""

from __future__ import annotations

import time

import phonenumbers

from gateway.crm.client import BitrixClient, BitrixError
from gateway.crm.dialect import CLASSIC, ITEMS, Dialect
from gateway.crm.lookup import Lookup
from gateway.crm.statusfield import RestAccess, StatusField
from gateway.run.config import DEFAULT_STATUS_FIELD
from rules.model import Findings
from rules.phones import DEFAULT_REGION, try_normalize

# Refreshing after a CRM event runs in the background: it may wait longer than a live lookup.
CHANGE_TIMEOUT = 10.0


class BitrixDirectory:
    def __init__(
        self,
        client: BitrixClient,
        status_field: str = DEFAULT_STATUS_FIELD,
        region: str = DEFAULT_REGION,
        *,
        deadline: float = 1.5,
        enum_ttl: float = 300.0,
    ) -> None:
        self.client = client
        self.field = StatusField(status_field, enum_ttl)
        self.region = region
        self.deadline = deadline
        self.dialect: Dialect = ITEMS  # CLASSIC once the portal says it has no crm.item.*

    @property
    def status_field(self) -> str:
        return self.field.name

    @property
    def dataset(self) -> None:
        return None

    @property
    def rest(self) -> RestAccess:
        return RestAccess(self.client, self.field)

    async def lookup(self, phone: str) -> Findings:
        # A failure is logged once, by the cache that shares this lookup between callers.
        return await Lookup(self, phone, time.monotonic() + self.deadline).run()

    async def changed(self, kind: str, entity_id: str, deleted: bool) -> set[str]:
        """The phone keys the entity has now (none if it is gone). The numbers it had are the
        cache's to know (its entity index): the portal no longer says."""
        if deleted:
            return set()
        deadline = time.monotonic() + CHANGE_TIMEOUT
        dialect = self.dialect
        method, params = dialect.get(kind, entity_id)
        try:
            answer = await self.client.call(method, params, deadline=deadline, background=True)
        except BitrixError as err:
            if err.error == "ERROR_METHOD_NOT_FOUND" and dialect.items:
                self.dialect = CLASSIC
                return await self.changed(kind, entity_id, deleted)
            if err.status == 400 and (err.description == "Not found" or err.error == "NOT_FOUND"):
                return set()
            raise
        row = dialect.row(answer.result)
        values = [p.get("VALUE") for p in row.get("PHONE") or [] if isinstance(p, dict)]
        return {k for v in values if isinstance(v, str) and (k := try_normalize(v, self.region))}

    def health(self) -> dict[str, object]:
        return self.client.health()

    async def close(self) -> None:
        await self.client.close()

    def spellings(self, phone: str) -> list[str]:
        """What findbycomm must be asked so that every stored spelling matches: the E.164 form,
        and the national number without prefix (NormalizePhone keeps ``9160001122`` as is)."""
        try:
            national = phonenumbers.national_significant_number(phonenumbers.parse(phone))
        except phonenumbers.NumberParseException:
            return [phone]
        return [phone, national] if national else [phone]
