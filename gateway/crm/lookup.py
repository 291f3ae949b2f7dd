"""One cold lookup of a number over REST: two ``batch`` requests, one when nothing matches.

1. **Find**: ``crm.duplicate.findbycomm`` once per entity type (without ``entity_type``, 20+
   matches of one type silently drop the others, reference §3.1), plus the status field's list
   items when they are not cached. No match: done, one request.
2. **Details**: the leads, contacts and companies by id; the linked companies (a contact's
   ``companyIds``, a lead's ``companyId``, or with the classic API each contact's
   ``crm.contact.company.items.get``) and the responsible users through ``$result`` references.

References are resolved by the portal as ``CRestUtil::processBatchElement`` does (reference
§8a): an unresolved one keeps the node its walk reached, so it may fetch rows we did not ask for.
Two guards make that harmless: a row is kept only if its id was asked for (or is a linked
company of a row kept) and, for what matched, only if one of its phones normalises to the
number. What the references could not reach (a row deleted between the two requests, a contact
with more companies than referenced, more than 50 commands) is fetched in a further batch.

The result equals ``datafile.findings_for`` for the same data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from gateway.crm.budget import LANE, Lane
from gateway.crm.client import BatchAnswer, BitrixError
from gateway.crm.dialect import CLASSIC, method_missing
from gateway.crm.forms import encode_form
from rules.model import Company, Contact, Findings, Lead
from rules.phones import try_normalize

if TYPE_CHECKING:
    from gateway.crm.rest import BitrixDirectory

MAX_COMMANDS = 50
FILL_IN_ROUNDS = 3
CLASSIC_LINKS = 3  # a contact's companies referenced in the classic API's details batch
# Managers of a contact's linked companies referenced per contact. A reference past the end
# resolves to the whole list (§8a): user.get then finds nobody we keep, at the cost of one
# sub-request; more companies than this cost a further batch.
LINKED_USERS = 4
KINDS = (("lead", "L"), ("contact", "C"), ("company", "K"))
FIND = "crm.duplicate.findbycomm"


class Lookup:
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
        # One lane for the lookup: its second request keeps the first one's place in the
        # budget's queue, and the first is refused if both cannot come before the deadline.
        # A lane set by the caller (background work, a user's share) is kept, so that a live
        # call joining this lookup can promote it.
        outer = LANE.get()
        self.lane = outer if outer is not None else Lane()
        self.lane.expect = 2
        token = LANE.set(self.lane)
        try:
            return await self._run()
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise BitrixError(
                "batch", "BAD_RESPONSE", f"unexpected answer shape ({err!r})"
            ) from None
        finally:
            LANE.reset(token)

    async def _run(self) -> Findings:
        found = await self._batch(self._find_commands())
        ids = {
            kind: [str(i) for i in _found(found.results.get(f"f{kind}"), kind.upper())]
            for kind, _ in KINDS
        }
        self._take_enum(found)
        self.lane.expect = 1
        if not any(ids.values()):
            return Findings(phone=self.phone)
        answer = await self._batch(self._detail_commands(ids))
        if self.o.dialect.items and any(method_missing(e) for e in answer.errors.values()):
            self.o.dialect = CLASSIC  # a portal without crm.item.*: for good
            answer = await self._batch(self._detail_commands(ids))
        self._take(answer, ids)
        for _ in range(FILL_IN_ROUNDS):
            commands = self._fill_in_commands()
            if not commands:
                break
            self._take(await self._batch(commands), ids)
        return self._findings()

    async def _batch(self, commands: dict[str, str]) -> BatchAnswer:
        answer = await self.o.client.batch(commands, deadline=self.deadline)
        # A failed sub-request is a failed lookup (painted "none"), never fewer findings: those
        # would be cached as the number's colour. Only names of users may be missing.
        for key, err in answer.errors.items():
            if not key.startswith("u") and not (self.o.dialect.items and method_missing(err)):
                method = commands.get(key, "batch").partition("?")[0]
                raise self.o.client.sub_error(method, err)
        return answer

    # -- commands ----------------------------------------------------------------------------
    def _find_commands(self) -> dict[str, str]:
        values = self.o.spellings(self.phone)
        cmd = {
            f"f{kind}": f"{FIND}?"
            + encode_form({"type": "PHONE", "values": values, "entity_type": kind.upper()})
            for kind, _ in KINDS
        }
        if self.o.field.codes() is None:
            cmd["E"] = self.o.field.command()
        return cmd

    def _detail_commands(self, ids: dict[str, list[str]]) -> dict[str, str]:
        d, status = self.o.dialect, (self.o.status_field,)
        cmd: dict[str, str] = {}
        for kind, key in KINDS:
            if ids[kind]:
                cmd[key] = d.list_command(kind, _sorted(ids[kind]), status if key == "K" else ())
        if self.o.field.codes() is None:
            cmd["E"] = self.o.field.command()
        contacts, leads = _sorted(ids["contact"]), _sorted(ids["lead"])
        refs = [d.ref("L", j, "COMPANY_ID") for j in range(len(leads))]
        users = [
            d.ref(key, j, "ASSIGNED_BY_ID") for kind, key in KINDS for j in range(len(ids[kind]))
        ]
        if d.items:
            # A contact's companyIds is a list: as a whole value it becomes the IN list itself.
            for j in range(len(contacts)):
                cmd[f"X{j}"] = d.list_command("company", d.ref("C", j, "COMPANY_IDS"), status)
                users += [d.ref(f"X{j}", k, "ASSIGNED_BY_ID") for k in range(LINKED_USERS)]
        else:
            for c in contacts:
                cmd[f"cc_{c}"] = f"crm.contact.company.items.get?id={c}"
                refs += [f"$result[cc_{c}][{k}][COMPANY_ID]" for k in range(CLASSIC_LINKS)]
        if refs:
            # "0" keeps the IN list non-empty when nothing resolves to an id.
            cmd["XL"] = d.list_command("company", ["0", *refs], status)
            users += [d.ref("XL", k, "ASSIGNED_BY_ID") for k in range(min(len(refs), 6))]
        for n, ref in enumerate(users[: max(0, MAX_COMMANDS - len(cmd))]):
            cmd[f"u{n}"] = "user.get?" + encode_form({"ID": ref})
        return dict(list(cmd.items())[:MAX_COMMANDS])

    def _fill_in_commands(self) -> dict[str, str]:
        cmd: dict[str, str] = {}
        for contact in self.rows["contact"]:
            if contact not in self.links:
                cmd[f"cc_{contact}"] = f"crm.contact.company.items.get?id={contact}"
        missing = _sorted(list(self._linked_ids() - set(self.rows["company"])))
        if missing:
            cmd["XF"] = self.o.dialect.list_command("company", missing, (self.o.status_field,))
        enum = self.o.field.codes()
        # A status item the cached map does not know (added since) is settled by one refresh.
        if enum is None or (not self.enum_fresh and self._status_items() - set(enum)):
            cmd["E"] = self.o.field.command()
        for user in _sorted(list(self._needed_users() - set(self.users)))[: MAX_COMMANDS - 2]:
            cmd[f"u{user}"] = f"user.get?ID={user}"
        return cmd

    # -- answers -----------------------------------------------------------------------------
    def _take(self, answer: BatchAnswer, ids: dict[str, list[str]]) -> None:
        res, d = answer.results, self.o.dialect
        for kind, key in KINDS:
            for row in d.rows(res.get(key)):
                if str(row["ID"]) in ids[kind] and self._has_phone(row):
                    self.rows[kind][str(row["ID"])] = row
                    if kind == "contact" and isinstance(row.get("COMPANY_IDS"), list):
                        self.links[str(row["ID"])] = [str(c) for c in row["COMPANY_IDS"]]
        for key, value in res.items():
            if key.startswith("cc_"):
                self.links[key[3:]] = [str(item["COMPANY_ID"]) for item in _list(value)]
        linked = self._linked_ids()
        for key, value in res.items():
            if key.startswith("X"):
                for row in d.rows(value):
                    if str(row["ID"]) in linked:  # the reference guard
                        self.rows["company"].setdefault(str(row["ID"]), row)
        self._take_enum(answer)
        for key, value in res.items():
            if key.startswith("u"):
                for user in _list(value):
                    self.users[str(user["ID"])] = _full_name(user)

    def _take_enum(self, answer: BatchAnswer) -> None:
        if "E" in answer.results:
            self.o.field.remember(answer.results["E"])
            self.enum_fresh = True

    def _has_phone(self, row: dict[str, Any]) -> bool:
        values = [p.get("VALUE") for p in row.get("PHONE") or [] if isinstance(p, dict)]
        return any(
            isinstance(v, str) and try_normalize(v, self.o.region) == self.phone for v in values
        )

    def _linked_ids(self) -> set[str]:
        linked = {c for contact in self.rows["contact"] for c in self.links.get(contact, [])}
        linked |= {c for lead in self.rows["lead"].values() if (c := ref(lead.get("COMPANY_ID")))}
        return linked

    def _needed_users(self) -> set[str]:
        rows = [r for kind in self.rows.values() for r in kind.values()]
        return {u for r in rows if (u := ref(r.get("ASSIGNED_BY_ID")))}

    def _status_items(self) -> set[str]:
        items = (ref(r.get(self.o.status_field)) for r in self.rows["company"].values())
        return {i for i in items if i}

    # -- the result --------------------------------------------------------------------------
    def _findings(self) -> Findings:
        found = {
            kind: [r for r in rows.values() if self._has_phone(r)]
            for kind, rows in self.rows.items()
        }
        linked = self._linked_ids() & set(self.rows["company"])
        return Findings(
            phone=self.phone,
            leads=tuple(self._lead(r) for r in _by_id(found["lead"])),
            contacts=tuple(self._contact(r) for r in _by_id(found["contact"])),
            companies=tuple(self._company(r) for r in _by_id(found["company"])),
            linked_companies=tuple(self._company(self.rows["company"][i]) for i in _sorted(linked)),
        )

    def _lead(self, r: dict[str, Any]) -> Lead:
        who = str(r["ASSIGNED_BY_ID"])
        return Lead(
            id=str(r["ID"]),
            title=str(r.get("TITLE") or ""),
            assigned_by=who,
            status=r.get("STATUS_ID") or None,
            company_id=ref(r.get("COMPANY_ID")),
            contact_id=ref(r.get("CONTACT_ID")),
            assigned_name=self.users.get(who),
        )

    def _contact(self, r: dict[str, Any]) -> Contact:
        who, ident = str(r["ASSIGNED_BY_ID"]), str(r["ID"])
        companies = _sorted(
            [c for c in set(self.links.get(ident, [])) if c in self.rows["company"]]
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
        item = ref(r.get(self.o.status_field))
        status = (self.o.field.codes() or {}).get(item) if item else None
        return Company(
            id=str(r["ID"]),
            title=str(r.get("TITLE") or ""),
            assigned_by=who,
            status=status or None,
            assigned_name=self.users.get(who),
        )


def _found(value: Any, kind: str) -> list[Any]:
    """findbycomm's answer: ``{"LEAD": [ids]}``, or ``[]`` (PHP's empty array) for none."""
    ids = value.get(kind) if isinstance(value, dict) else None
    return ids if isinstance(ids, list) else []


def _list(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value] if "ID" in value or "COMPANY_ID" in value else list(value.values())
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def ref(value: Any) -> str | None:
    """An id field's value as an id, or None (0, "", null, a list from a widened reference)."""
    text = (
        str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    )
    return text if text.isdigit() and int(text) > 0 else None


def _full_name(row: dict[str, Any]) -> str:
    parts = (row.get(k) for k in ("NAME", "SECOND_NAME", "LAST_NAME"))
    return " ".join(p for p in parts if isinstance(p, str) and p)


def _sorted(ids: Iterable[str]) -> list[str]:
    return sorted(ids, key=int)


def _by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: int(r["ID"]))
