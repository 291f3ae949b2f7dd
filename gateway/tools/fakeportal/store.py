"""The fake portal's CRM state, in the shapes Bitrix24 REST returns (reference/bitrix24.md §3-§5).

Records are kept as Bitrix field dicts: string ids (``"ID": "10"``), ``PHONE`` multifields
``{ID, VALUE_TYPE, VALUE, TYPE_ID}``, the company status as an enumeration user field whose value
is a list item's ``ID``. Built from a data file (design.md §3.3); changed through REST or the
Python API.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from gateway.crm.dataset import Dataset
from gateway.crm.forms import FormError, parse_query
from rules.phones import strip_extension
from rules.policy import Status

KINDS = ("company", "contact", "lead")
CREATED = "2024-03-11T16:36:46+03:00"
MAX_DUPLICATES = 20


class RestError(Exception):
    """A REST error envelope: HTTP ``status``, ``error`` (may be empty), ``error_description``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description


def parse_params(text: str) -> dict[str, Any]:
    """A query string or form body as the portal reads it; a malformed one is its 400."""
    try:
        return parse_query(text)
    except FormError as err:
        raise RestError(400, "INVALID_REQUEST", str(err)) from None


def not_found() -> RestError:
    return RestError(400, "", "Not found")


def normalize_phone(value: str) -> str:
    """Bitrix's ``NormalizePhone``: digits only, no ``00``/``011``, ``8``->``7``, no leading 0."""
    digits = re.sub(r"\D", "", strip_extension(value))
    if digits.startswith("00"):
        digits = digits[2:]
    elif digits.startswith("011"):
        digits = digits[3:]
    if len(digits) >= 10 and digits[0] == "8" and digits[1] not in "012":
        digits = "7" + digits[1:]
    return digits.removeprefix("0")


def now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def as_id(value: Any) -> str | None:
    """An id as Bitrix takes it: ``10`` or ``"10"``; anything else (``""``, None) is no id."""
    text = (
        str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    )
    return text if text.isdigit() and int(text) > 0 else None


def split_name(name: str) -> tuple[str, str]:
    first, _, last = name.partition(" ")
    return first, last


class PortalStore:
    def __init__(
        self,
        data: Dataset,
        *,
        statuses: Iterable[Status] = (),
        status_field: str = "UF_CRM_CALLGUARD_STATUS",
        with_status_field: bool = True,
    ) -> None:
        self.records: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in KINDS}
        self.links: list[tuple[str, str]] = []  # (contact id, company id), in link order
        self.users: dict[str, dict[str, Any]] = {}
        self.departments: dict[str, dict[str, Any]] = {}
        self.userfields: dict[str, dict[str, Any]] = {}
        self._next = {"company": 1000, "contact": 2000, "lead": 3000, "multi": 8300, "enum": 45}
        self._next_field = 6997
        self._load(data, list(statuses), status_field, with_status_field)

    # -- building ---------------------------------------------------------------------------
    def _load(self, data: Dataset, statuses: list[Status], field: str, with_field: bool) -> None:
        for u in data.users.values():
            first, last = split_name(u.name)
            self.users[u.id] = {
                "ID": u.id,
                "ACTIVE": True,
                "NAME": first,
                "LAST_NAME": last,
                "EMAIL": f"user{u.id}@example.test",
                "WORK_POSITION": "",
                "USER_TYPE": "employee",
                "UF_DEPARTMENT": [int(d) for d in u.departments],
                "_ADMIN": u.admin,
            }
        for d in data.departments.values():
            dep: dict[str, Any] = {"ID": d.id, "NAME": d.name, "SORT": 500}
            if d.parent:
                dep["PARENT"] = d.parent
            if d.head:
                dep["UF_HEAD"] = d.head
            self.departments[d.id] = dep
        codes = [s.code for s in statuses]
        codes += sorted({c.status for c in data.companies.values() if c.status} - set(codes))
        names = {s.code: s.name for s in statuses}
        if with_field:
            self.add_userfield(
                {
                    "FIELD_NAME": field,
                    "USER_TYPE_ID": "enumeration",
                    "LABEL": "Callguard status",
                    "LIST": [
                        {"VALUE": names.get(c, c), "XML_ID": c, "SORT": 10 * (i + 1), "DEF": "N"}
                        for i, c in enumerate(codes)
                    ],
                }
            )
        item_ids = {i["XML_ID"]: i["ID"] for f in self.userfields.values() for i in f["LIST"]}
        for c in data.companies.values():
            fields: dict[str, Any] = {"TITLE": c.title, "ASSIGNED_BY_ID": c.assigned_by}
            if with_field:
                fields[field] = item_ids.get(c.status) if c.status else None
            self._insert("company", c.id, fields, c.phones)
        for p in data.contacts.values():
            first, last = split_name(p.name)
            fields = {"NAME": first, "LAST_NAME": last, "ASSIGNED_BY_ID": p.assigned_by}
            self._insert("contact", p.id, fields, p.phones)
        for x in data.leads.values():
            fields = {
                "TITLE": x.title,
                "ASSIGNED_BY_ID": x.assigned_by,
                "STATUS_ID": x.status,
                "COMPANY_ID": x.company,
                "CONTACT_ID": x.contact,
            }
            self._insert("lead", x.id, fields, x.phones)
        for p in data.contacts.values():
            for company in p.companies:
                self._link(p.id, company)
        for c in data.companies.values():
            for contact in c.contacts:
                self._link(contact, c.id)

    def _insert(self, kind: str, ident: str, fields: dict[str, Any], phones: list[str]) -> None:
        base: dict[str, Any] = {
            "ID": ident,
            "CREATED_BY_ID": "1",
            "MODIFY_BY_ID": "1",
            "DATE_CREATE": CREATED,
            "DATE_MODIFY": CREATED,
        }
        if kind == "company":
            base.update({"COMPANY_TYPE": "CUSTOMER", "IS_MY_COMPANY": "N"})
            for name in self.userfields_by_name():
                base[name] = None
        elif kind == "contact":
            base.update({"SECOND_NAME": "", "TYPE_ID": "CLIENT"})
        base.update(fields)
        base["PHONE"] = [self._multi(v) for v in phones]
        self.records[kind][ident] = base
        self._next[kind] = max(self._next[kind], int(ident) + 1)

    def _multi(self, value: str, value_type: str = "WORK") -> dict[str, Any]:
        self._next["multi"] += 1
        return {
            "ID": str(self._next["multi"]),
            "VALUE_TYPE": value_type,
            "VALUE": value,
            "TYPE_ID": "PHONE",
        }

    def _link(self, contact: str, company: str) -> None:
        if (contact, company) not in self.links:
            self.links.append((contact, company))

    # -- reading -----------------------------------------------------------------------------
    def record(self, kind: str, ident: Any) -> dict[str, Any]:
        key = as_id(ident)
        if key is None:
            raise RestError(400, "", "ID is not defined or invalid.")
        rec = self.records[kind].get(key)
        if rec is None:
            raise not_found()
        return rec

    def view(self, kind: str, rec: dict[str, Any]) -> dict[str, Any]:
        """What ``crm.<kind>.get`` shows: ``PHONE`` only when there is one (§3.4)."""
        out = {k: copy.deepcopy(v) for k, v in rec.items() if k != "PHONE"}
        out["HAS_PHONE"] = "Y" if rec["PHONE"] else "N"
        if rec["PHONE"]:
            out["PHONE"] = copy.deepcopy(rec["PHONE"])
        if kind == "contact":
            companies = self.contact_companies(rec["ID"])
            out["COMPANY_ID"] = companies[0] if companies else None
            out["COMPANY_IDS"] = companies
        if kind == "lead":
            status = rec.get("STATUS_ID")
            out["STATUS_SEMANTIC_ID"] = {"CONVERTED": "S", "JUNK": "F"}.get(status or "", "P")
        return out

    def contact_companies(self, contact: str) -> list[str]:
        return [co for c, co in self.links if c == contact and co in self.records["company"]]

    def company_contacts(self, company: str) -> list[str]:
        return [c for c, co in self.links if co == company and c in self.records["contact"]]

    def find_by_phone(self, kind: str, values: list[str]) -> list[int]:
        found: list[int] = []
        for value in values:
            key = normalize_phone(value)
            hits = [
                int(i)
                for i, rec in self.records[kind].items()
                if key and any(normalize_phone(p["VALUE"]) == key for p in rec["PHONE"])
            ]
            found += [h for h in sorted(hits)[:MAX_DUPLICATES] if h not in found]
        return found

    # -- changing ----------------------------------------------------------------------------
    def add(self, kind: str, fields: dict[str, Any], by_user: str) -> str:
        ident = str(self._next[kind])
        self._insert(kind, ident, {}, [])
        rec = self.records[kind][ident]
        rec["CREATED_BY_ID"] = by_user
        self._apply(kind, rec, fields, by_user)
        return ident

    def update(self, kind: str, ident: Any, fields: dict[str, Any], by_user: str) -> str:
        rec = self.record(kind, ident)
        self._apply(kind, rec, fields, by_user)
        return str(rec["ID"])

    def delete(self, kind: str, ident: Any) -> str:
        rec = self.record(kind, ident)
        del self.records[kind][rec["ID"]]
        column = 0 if kind == "contact" else 1
        self.links = [link for link in self.links if kind == "lead" or link[column] != rec["ID"]]
        return str(rec["ID"])

    def _apply(self, kind: str, rec: dict[str, Any], fields: dict[str, Any], by_user: str) -> None:
        if not isinstance(fields, dict):
            raise RestError(400, "", "Parameter 'fields' must be array.")
        for key, value in fields.items():
            name = str(key).upper()
            if name in ("ID", "HAS_PHONE", "DATE_CREATE", "DATE_MODIFY", "CREATED_BY_ID"):
                continue
            if name == "PHONE":
                self._apply_phones(rec, value)
            elif name in ("COMPANY_IDS", "COMPANY_ID") and kind == "contact":
                ids = value if isinstance(value, list) else [value]
                self.links = [link for link in self.links if link[0] != rec["ID"]]
                for company in filter(None, map(as_id, ids)):
                    self._link(rec["ID"], company)
            elif name == "CONTACT_ID" and kind == "company":
                ids = value if isinstance(value, list) else [value]
                self.links = [link for link in self.links if link[1] != rec["ID"]]
                for contact in filter(None, map(as_id, ids)):
                    self._link(contact, rec["ID"])
            elif name.startswith("UF_") and kind == "company":
                if name not in self.userfields_by_name():
                    continue  # Bitrix drops unknown user fields silently
                rec[name] = as_id(value)
            else:
                rec[name] = None if value is None else str(value)
        rec["MODIFY_BY_ID"] = by_user
        rec["DATE_MODIFY"] = now_iso()

    def _apply_phones(self, rec: dict[str, Any], items: Any) -> None:
        """Multifield update: an item with ``ID`` changes (or, with an empty VALUE, removes) that
        value; an item without ``ID`` adds one."""
        if isinstance(items, dict):
            items = list(items.values())
        if not isinstance(items, list):
            raise RestError(400, "", "Field 'PHONE' must be array.")
        for item in items:
            if not isinstance(item, dict):
                continue
            value = str(item.get("VALUE") or "")
            kind = str(item.get("VALUE_TYPE") or "WORK")
            current = next((p for p in rec["PHONE"] if p["ID"] == str(item.get("ID"))), None)
            if current is None:
                if value:
                    rec["PHONE"].append(self._multi(value, kind))
            elif not value or item.get("DELETE") == "Y":
                rec["PHONE"].remove(current)
            else:
                current.update({"VALUE": value, "VALUE_TYPE": kind})

    # -- user fields (companies) -------------------------------------------------------------
    def userfields_by_name(self) -> dict[str, dict[str, Any]]:
        return {f["FIELD_NAME"]: f for f in self.userfields.values()}

    def add_userfield(self, fields: dict[str, Any]) -> int:
        name = str(fields.get("FIELD_NAME") or "").upper()
        if not name:
            raise RestError(400, "", "FIELD_NAME is not defined.")
        if not name.startswith("UF_CRM_"):
            name = "UF_CRM_" + name
        if len(name) > 50 or not re.fullmatch(r"UF_CRM_[A-Z0-9_]+", name):
            raise RestError(400, "ERROR_CORE", f"Invalid field name {name}.")
        if name in self.userfields_by_name():
            raise RestError(400, "ERROR_CORE", f"User field {name} already exists.")
        self._next_field += 1
        field: dict[str, Any] = {
            "ID": str(self._next_field),
            "ENTITY_ID": "CRM_COMPANY",
            "FIELD_NAME": name,
            "USER_TYPE_ID": str(fields.get("USER_TYPE_ID") or "string"),
            "XML_ID": fields.get("XML_ID"),
            "SORT": str(fields.get("SORT") or 100),
            "MULTIPLE": str(fields.get("MULTIPLE") or "N"),
            "MANDATORY": str(fields.get("MANDATORY") or "N"),
            "SHOW_FILTER": str(fields.get("SHOW_FILTER") or "N"),
            "SHOW_IN_LIST": "Y",
            "EDIT_IN_LIST": "Y",
            "IS_SEARCHABLE": "N",
            "SETTINGS": fields.get("SETTINGS") or {},
            "LIST": [],
            "LABEL": fields.get("LABEL"),
        }
        self.userfields[field["ID"]] = field
        self._update_list(field, fields.get("LIST"))
        for rec in self.records["company"].values():
            rec.setdefault(name, None)
        return int(field["ID"])

    def userfield(self, ident: Any) -> dict[str, Any]:
        key = as_id(ident)
        if key is None or key not in self.userfields:
            raise not_found()
        return self.userfields[key]

    def update_userfield(self, ident: Any, fields: dict[str, Any]) -> None:
        field = self.userfield(ident)
        for key in ("SORT", "MANDATORY", "SHOW_FILTER", "SETTINGS", "LABEL", "XML_ID"):
            if key in fields:
                field[key] = fields[key]
        if "LIST" in fields:
            self._update_list(field, fields["LIST"])

    def delete_userfield(self, ident: Any) -> None:
        field = self.userfield(ident)
        del self.userfields[field["ID"]]
        for rec in self.records["company"].values():
            rec.pop(field["FIELD_NAME"], None)

    def _update_list(self, field: dict[str, Any], items: Any) -> None:
        if isinstance(items, dict):
            items = list(items.values())
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            current = next((i for i in field["LIST"] if i["ID"] == str(item.get("ID"))), None)
            if current is not None and item.get("DEL") == "Y":
                field["LIST"].remove(current)
                continue
            if current is None:
                self._next["enum"] += 1
                current = {
                    "ID": str(self._next["enum"]),
                    "SORT": "500",
                    "VALUE": "",
                    "DEF": "N",
                    "XML_ID": f"{time.time_ns():x}",
                }
                field["LIST"].append(current)
            for key in ("SORT", "VALUE", "DEF", "XML_ID"):
                if item.get(key) is not None:
                    current[key] = str(item[key])

    def enum_item_id(self, field_name: str, xml_id: str) -> str | None:
        field = self.userfields_by_name().get(field_name)
        items = field["LIST"] if field else []
        return next((i["ID"] for i in items if i["XML_ID"] == xml_id), None)
