"""BitrixDirectory: the :class:`Directory` over a Bitrix24 portal's REST API.

A cold lookup is two round trips: ``crm.duplicate.findbycomm`` once per entity type, in parallel
(without ``entity_type``, 20+ matches of one type silently drop the others, reference §3.1), then
ONE ``batch`` for the details: leads, contacts and companies by id, each contact's companies,
the linked companies (``$result`` references), the responsible users' names and, when not cached,
the status field's list items. What the references could not reach (a contact with several
companies, a batch over 50 commands) is fetched in a further batch; that is rare.

The result equals ``datafile.findings_for`` for the same data: rows are kept only if their id was
asked for (Bitrix's reference quirk can turn a filter into no filter) and one of their phones
normalises to the number (findbycomm's own normalisation is looser than ours).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

import phonenumbers

from gateway.crm.client import BatchAnswer, BitrixClient, BitrixError
from gateway.crm.forms import encode_form
from gateway.crm.statusfield import RestAccess, StatusField
from gateway.run.config import DEFAULT_STATUS_FIELD
from rules.model import Company, Contact, Findings, Lead
from rules.phones import DEFAULT_REGION, try_normalize

T = TypeVar("T")
# Refreshing after a CRM event runs in the background: it may wait longer than a live lookup.
CHANGE_TIMEOUT = 10.0

MAX_COMMANDS = 50
FILL_IN_ROUNDS = 3
LEAD_FIELDS = ["ID", "TITLE", "STATUS_ID", "ASSIGNED_BY_ID", "COMPANY_ID", "CONTACT_ID", "PHONE"]
CONTACT_FIELDS = ["ID", "NAME", "SECOND_NAME", "LAST_NAME", "ASSIGNED_BY_ID", "PHONE"]


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
        return await _Lookup(self, phone, time.monotonic() + self.deadline).run()

    async def changed(self, kind: str, entity_id: str, deleted: bool) -> set[str]:
        """The phone keys the entity has now (none if it is gone). The numbers it had are the
        cache's to know (its entity index): the portal no longer says."""
        if deleted:
            return set()
        try:
            row = await self.client.call(
                f"crm.{kind}.get", {"id": entity_id}, deadline=time.monotonic() + CHANGE_TIMEOUT
            )
        except BitrixError as err:
            if err.status == 400 and err.description == "Not found":
                return set()
            raise
        result = row.result if isinstance(row.result, dict) else {}
        values = [p.get("VALUE") for p in result.get("PHONE") or [] if isinstance(p, dict)]
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


class _Lookup:
    """The state of one lookup: ids from findbycomm, rows from batches, what is still missing."""

    def __init__(self, owner: BitrixDirectory, phone: str, deadline: float) -> None:
        self.o = owner
        self.phone = phone
        self.deadline = deadline
        self.rows: dict[str, dict[str, dict[str, Any]]] = {"lead": {}, "contact": {}, "company": {}}
        self.links: dict[str, list[str]] = {}  # contact id -> company ids
        self.users: dict[str, str] = {}
        self.enum_fresh = False

    async def run(self) -> Findings:
        kinds = ("LEAD", "CONTACT", "COMPANY")
        found = await _all(self._find(kind) for kind in kinds)
        ids = dict(zip(("lead", "contact", "company"), found, strict=True))
        if not any(ids.values()):
            return Findings(phone=self.phone)
        try:
            answer = await self._batch(self._first_commands(ids))
            self._take(answer, ids)
            for _ in range(FILL_IN_ROUNDS):
                commands = self._fill_in_commands()
                if not commands:
                    break
                self._take(await self._batch(commands), ids)
            return self._findings()
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise BitrixError(
                "batch", "BAD_RESPONSE", f"unexpected answer shape ({err!r})"
            ) from None

    async def _find(self, kind: str) -> list[str]:
        params = {"type": "PHONE", "values": self.o.spellings(self.phone), "entity_type": kind}
        answer = await self.o.client.call(
            "crm.duplicate.findbycomm", params, deadline=self.deadline
        )
        result = answer.result if isinstance(answer.result, dict) else {}  # [] when nothing found
        return [str(i) for i in result.get(kind) or []]

    async def _batch(self, commands: dict[str, str]) -> BatchAnswer:
        return await self.o.client.batch(commands, deadline=self.deadline)

    # -- commands ----------------------------------------------------------------------------
    def _first_commands(self, ids: dict[str, list[str]]) -> dict[str, str]:
        cmd: dict[str, str] = {}
        company_fields = ["ID", "TITLE", "ASSIGNED_BY_ID", self.o.status_field, "PHONE"]
        for kind, key, fields in (
            ("lead", "L", LEAD_FIELDS),
            ("contact", "C", CONTACT_FIELDS),
            ("company", "K", company_fields),
        ):
            if ids[kind]:
                cmd[key] = _list(kind, ids[kind], fields)
        if self.o.field.codes() is None:
            cmd["E"] = self.o.field.command()
        for contact in ids["contact"]:
            cmd[f"cc_{contact}"] = f"crm.contact.company.items.get?id={contact}"
        # Linked companies through references: a contact's first two companies, each lead's
        # company. "0" keeps the IN list non-empty when no reference resolves (an empty value is
        # dropped from a Bitrix filter, and then there is no filter at all).
        refs = [f"$result[cc_{c}][{k}][COMPANY_ID]" for c in ids["contact"] for k in (0, 1)]
        refs += [f"$result[L][{j}][COMPANY_ID]" for j in range(len(ids["lead"]))]
        if refs:
            cmd["X"] = _list("company", ["0", *refs], company_fields)
        users = [f"uL{j}:$result[L][{j}][ASSIGNED_BY_ID]" for j in range(len(ids["lead"]))]
        users += [f"uC{j}:$result[C][{j}][ASSIGNED_BY_ID]" for j in range(len(ids["contact"]))]
        users += [f"uK{j}:$result[K][{j}][ASSIGNED_BY_ID]" for j in range(len(ids["company"]))]
        # A reference past the end of X turns into "ID=" and user.get then answers with every
        # user: only the first few rows of X get one (the rest, if any, come in a fill-in).
        users += [f"uX{j}:$result[X][{j}][ASSIGNED_BY_ID]" for j in range(min(len(refs), 3))]
        for entry in users[: MAX_COMMANDS - len(cmd)]:
            key, ref = entry.split(":", 1)
            cmd[key] = f"user.get?ID={ref}"
        return dict(list(cmd.items())[:MAX_COMMANDS])

    def _fill_in_commands(self) -> dict[str, str]:
        cmd: dict[str, str] = {}
        for contact in self.rows["contact"]:
            if contact not in self.links:
                cmd[f"cc_{contact}"] = f"crm.contact.company.items.get?id={contact}"
        missing = sorted(self._linked_ids() - set(self.rows["company"]), key=int)
        if missing:
            company_fields = ["ID", "TITLE", "ASSIGNED_BY_ID", self.o.status_field, "PHONE"]
            cmd["X"] = _list("company", missing, company_fields)
        enum = self.o.field.codes()
        # A status item the cached map does not know (added since) is settled by one refresh.
        if enum is None or (not self.enum_fresh and self._status_items() - set(enum)):
            cmd["E"] = self.o.field.command()
        for user in sorted(self._needed_users() - set(self.users), key=int)[: MAX_COMMANDS - 2]:
            cmd[f"u{user}"] = f"user.get?ID={user}"
        return cmd

    # -- answers -----------------------------------------------------------------------------
    def _take(self, answer: BatchAnswer, ids: dict[str, list[str]]) -> None:
        res = answer.results
        for kind, key in (("lead", "L"), ("contact", "C"), ("company", "K")):
            for row in _rows(res.get(key)):
                if str(row["ID"]) in ids[kind] and self._has_phone(row):
                    self.rows[kind][str(row["ID"])] = row
        for key, value in res.items():
            if key.startswith("cc_"):
                self.links[key[3:]] = [str(item["COMPANY_ID"]) for item in _rows(value)]
        linked = self._linked_ids()
        for row in _rows(res.get("X")):
            if str(row["ID"]) in linked:  # the reference quirk guard
                self.rows["company"].setdefault(str(row["ID"]), row)
        if "E" in res:
            self.o.field.remember(res["E"])
            self.enum_fresh = True
        for key, value in res.items():
            if key.startswith("u") and not key.startswith("cc_"):
                for user in _rows(value):
                    self.users[str(user["ID"])] = _full_name(user)

    def _has_phone(self, row: dict[str, Any]) -> bool:
        values = [p.get("VALUE") for p in row.get("PHONE") or [] if isinstance(p, dict)]
        return any(
            isinstance(v, str) and try_normalize(v, self.o.region) == self.phone for v in values
        )

    def _linked_ids(self) -> set[str]:
        linked = {c for contact in self.rows["contact"] for c in self.links.get(contact, [])}
        linked |= {c for lead in self.rows["lead"].values() if (c := _ref(lead.get("COMPANY_ID")))}
        return linked

    def _needed_users(self) -> set[str]:
        rows = [r for kind in self.rows.values() for r in kind.values()]
        return {u for r in rows if (u := _ref(r.get("ASSIGNED_BY_ID")))}

    def _status_items(self) -> set[str]:
        items = (_ref(r.get(self.o.status_field)) for r in self.rows["company"].values())
        return {i for i in items if i}

    # -- the result --------------------------------------------------------------------------
    def _findings(self) -> Findings:
        found = {
            kind: [r for i, r in rows.items() if i in self._matched(kind)]
            for kind, rows in self.rows.items()
        }
        linked = self._linked_ids() & set(self.rows["company"])
        return Findings(
            phone=self.phone,
            leads=tuple(self._lead(r) for r in _by_id(found["lead"])),
            contacts=tuple(self._contact(r) for r in _by_id(found["contact"])),
            companies=tuple(self._company(r) for r in _by_id(found["company"])),
            linked_companies=tuple(
                self._company(self.rows["company"][i]) for i in sorted(linked, key=int)
            ),
        )

    def _matched(self, kind: str) -> set[str]:
        """Rows found by phone (linked companies were fetched too, but did not match)."""
        rows = self.rows[kind]
        return {i for i, r in rows.items() if self._has_phone(r)}

    def _lead(self, r: dict[str, Any]) -> Lead:
        who = str(r["ASSIGNED_BY_ID"])
        return Lead(
            id=str(r["ID"]),
            title=str(r.get("TITLE") or ""),
            assigned_by=who,
            status=r.get("STATUS_ID") or None,
            company_id=_ref(r.get("COMPANY_ID")),
            contact_id=_ref(r.get("CONTACT_ID")),
            assigned_name=self.users.get(who),
        )

    def _contact(self, r: dict[str, Any]) -> Contact:
        who, ident = str(r["ASSIGNED_BY_ID"]), str(r["ID"])
        companies = sorted(
            {c for c in self.links.get(ident, []) if c in self.rows["company"]}, key=int
        )
        return Contact(
            id=ident,
            name=_full_name(r),
            assigned_by=who,
            company_ids=tuple(companies),
            assigned_name=self.users.get(who),
        )

    def _company(self, r: dict[str, Any]) -> Company:
        who = str(r["ASSIGNED_BY_ID"])
        item = _ref(r.get(self.o.status_field))
        status = (self.o.field.codes() or {}).get(item) if item else None
        return Company(
            id=str(r["ID"]),
            title=str(r.get("TITLE") or ""),
            assigned_by=who,
            status=status or None,
            assigned_name=self.users.get(who),
        )


async def _all(coros: Iterable[Awaitable[T]]) -> list[T]:
    """Run concurrently; the first failure cancels the rest and is raised as itself."""
    tasks: list[asyncio.Task[T]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_await(c)) for c in coros]
    except ExceptionGroup as eg:
        raise eg.exceptions[0] from None
    return [t.result() for t in tasks]


async def _await(aw: Awaitable[T]) -> T:
    return await aw


def _list(kind: str, ids: list[str], fields: list[str]) -> str:
    return f"crm.{kind}.list?" + encode_form({"filter": {"@ID": ids}, "select": fields})


def _rows(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value] if "ID" in value or "COMPANY_ID" in value else list(value.values())
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def _ref(value: Any) -> str | None:
    text = (
        str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    )
    return text if text.isdigit() and int(text) > 0 else None


def _full_name(row: dict[str, Any]) -> str:
    parts = (row.get(k) for k in ("NAME", "SECOND_NAME", "LAST_NAME"))
    return " ".join(p for p in parts if isinstance(p, str) and p)


def _by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: int(r["ID"]))
