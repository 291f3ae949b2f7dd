"""BitrixDirectory: the :class:`Directory` over a Bitrix24 portal's REST API.

A cold lookup costs two HTTP requests, one when nothing matches (lookup.py). It speaks
``crm.item.*`` and falls back to the classic methods on portals without them (dialect.py).
"""

from __future__ import annotations

import time

import phonenumbers

from gateway.crm.client import BitrixClient
from gateway.crm.dialect import CLASSIC, ITEMS, Dialect, method_missing
from gateway.crm.lookup import Lookup, ref
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

    def held(self, phone: str) -> None:
        return None  # behind the cache, which holds what it looked up

    async def lookup(self, phone: str) -> Findings:
        # A failure is logged once, by the cache that shares this lookup between callers.
        return await Lookup(self, phone, time.monotonic() + self.deadline).run()

    async def changed(self, kind: str, entity_id: str, deleted: bool) -> set[str]:
        """The phone keys whose lookups may differ now that the entity changed, as the portal
        has them now: the entity's numbers and, for a company, its contacts' and leads' (a
        contact linked since is not in the cache's index under the company). The numbers it
        had are the cache's to know (its entity index): the portal no longer says. One batch,
        in the background lane."""
        if deleted:
            return set()
        dialect = self.dialect
        commands = dialect.people(entity_id) if kind == "company" else {}
        commands = {"E": dialect.get_command(kind, entity_id), **commands}
        deadline = time.monotonic() + CHANGE_TIMEOUT
        answer = await self.client.batch(commands, deadline=deadline, background=True)
        errors = answer.errors
        if dialect.items and any(method_missing(e) for e in errors.values()):
            self.dialect = CLASSIC
            return await self.changed(kind, entity_id, deleted)
        if "E" in errors:
            err = self.client.sub_error(commands["E"].partition("?")[0], errors["E"])
            if err.description == "Not found" or err.error == "NOT_FOUND":
                return set()
            raise err
        for key, error in errors.items():
            raise self.client.sub_error(commands[key].partition("?")[0], error)
        row = dialect.row(answer.results.get("E"))
        rows = [row]
        if kind == "company":
            contacts = dialect.contact_ids(row, answer.results.get("cc"))
            rows += [r for r in dialect.rows(answer.results.get("C")) if r["ID"] in contacts]
            rows += [
                r
                for r in dialect.rows(answer.results.get("L"))
                if ref(r.get("COMPANY_ID")) == entity_id
            ]
        values = [p.get("VALUE") for r in rows for p in r.get("PHONE") or [] if isinstance(p, dict)]
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
