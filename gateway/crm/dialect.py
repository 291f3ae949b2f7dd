"""The two spellings of the CRM API a lookup can speak: ``crm.item.*`` and the classic methods.

Bitrix24 marked ``crm.lead.*``, ``crm.contact.*`` and ``crm.company.*`` deprecated in April 2026 in
favour of ``crm.item.*`` (reference §8a; field names from github.com/bitrix24/b24restdocs,
``api-reference/crm/universal/crm-item-add.md``): ``entityTypeId`` 1 lead, 3 contact, 4 company;
camelCase fields; phones in the multifield array ``fm``; a contact's companies in ``companyIds``.
A directory starts with :data:`ITEMS` and falls back to :data:`CLASSIC` for good when a portal
answers ``ERROR_METHOD_NOT_FOUND`` (older box versions).

Either way, rows reach the lookup in one internal shape, the classic one: string ``ID``,
``TITLE``, ``NAME``/``SECOND_NAME``/``LAST_NAME``, ``ASSIGNED_BY_ID``, ``STATUS_ID``,
``COMPANY_ID``, ``CONTACT_ID``, ``COMPANY_IDS`` (a contact's, crm.item only), ``PHONE`` as
``[{"VALUE": ...}]`` and the status field under its ``UF_CRM_...`` name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.crm.forms import encode_form

ENTITY_TYPE_IDS = {"lead": 1, "contact": 3, "company": 4}
MAX_PEOPLE = 20  # a company's contacts re-read after its change (the cache's index has the rest)
# kind -> fields to select (classic names; the status field is added for companies)
FIELDS = {
    "lead": ["ID", "TITLE", "STATUS_ID", "ASSIGNED_BY_ID", "COMPANY_ID", "CONTACT_ID", "PHONE"],
    "contact": ["ID", "NAME", "SECOND_NAME", "LAST_NAME", "ASSIGNED_BY_ID", "PHONE"],
    "company": ["ID", "TITLE", "ASSIGNED_BY_ID", "PHONE"],
}
CAMEL = {
    "ID": "id",
    "TITLE": "title",
    "NAME": "name",
    "SECOND_NAME": "secondName",
    "LAST_NAME": "lastName",
    "ASSIGNED_BY_ID": "assignedById",
    "STATUS_ID": "stageId",
    "COMPANY_ID": "companyId",
    "CONTACT_ID": "contactId",
    "COMPANY_IDS": "companyIds",
    "PHONE": "fm",
}
_CLASSIC = {v: k for k, v in CAMEL.items()}


@dataclass(frozen=True, slots=True)
class Dialect:
    items: bool  # crm.item.* (True) or crm.<kind>.* (False)

    @property
    def name(self) -> str:
        return "crm.item" if self.items else "classic"

    def list_command(self, kind: str, ids: list[str] | str, extra: tuple[str, ...] = ()) -> str:
        """A list of ``kind`` by ids: a list of id strings, or one whole-value ``$result``
        reference that resolves to a list of ids."""
        fields = FIELDS[kind] + list(extra)
        if kind == "contact" and self.items:
            fields = [*fields, "COMPANY_IDS"]
        if not self.items:
            # Ordered by ID: the details batch refers to rows by their index.
            query = {"filter": {"@ID": ids}, "select": fields, "order": {"ID": "ASC"}}
            return f"crm.{kind}.list?" + encode_form(query)
        params = {
            "entityTypeId": ENTITY_TYPE_IDS[kind],
            "filter": {"@id": ids},
            "order": {"id": "ASC"},
            "select": [CAMEL.get(f, f) for f in fields],
            "useOriginalUfNames": "Y",  # the status field keeps its UF_CRM_... name
        }
        return "crm.item.list?" + encode_form(params)

    def ref(self, key: str, index: int, field: str) -> str:
        """A reference to ``field`` of row ``index`` of the list answer ``key``."""
        if self.items:
            return f"$result[{key}][items][{index}][{CAMEL.get(field, field)}]"
        return f"$result[{key}][{index}][{field}]"

    def rows(self, value: Any) -> list[dict[str, Any]]:
        """A list answer's rows, in the internal shape."""
        if self.items:
            items = value.get("items") if isinstance(value, dict) else None
            return [classic_row(r) for r in items or [] if isinstance(r, dict)]
        if isinstance(value, dict):
            return [value] if "ID" in value else [r for r in value.values() if isinstance(r, dict)]
        return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []

    def get(self, kind: str, ident: str) -> tuple[str, dict[str, Any]]:
        if self.items:
            params: dict[str, Any] = {"entityTypeId": ENTITY_TYPE_IDS[kind], "id": ident}
            return "crm.item.get", {**params, "useOriginalUfNames": "Y"}
        return f"crm.{kind}.get", {"id": ident}

    def get_command(self, kind: str, ident: str) -> str:
        method, params = self.get(kind, ident)
        return f"{method}?" + encode_form(params)

    def people(self, company: str) -> dict[str, str]:
        """Batch commands for a company's contacts (``C``) and leads (``L``), with phones."""
        leads = {"COMPANY_ID": company}
        if self.items:
            # The company's contactIds (from "E", its crm.item.get) as one whole-value reference.
            contacts = self.list_command("contact", "$result[E][item][contactIds]", ())
            return {"C": contacts, "L": self._filtered("lead", leads)}
        refs = [f"$result[cc][{k}][CONTACT_ID]" for k in range(MAX_PEOPLE)]
        return {
            "cc": f"crm.company.contact.items.get?id={company}",
            "C": self.list_command("contact", ["0", *refs]),
            "L": self._filtered("lead", leads),
        }

    def contact_ids(self, company: dict[str, Any], links: Any) -> set[str]:
        """The contact ids a company's ``get`` (crm.item) or its contact items (classic) name."""
        if self.items:
            return {str(c) for c in company.get("contactIds") or []}
        rows = links if isinstance(links, list) else []
        return {str(r.get("CONTACT_ID")) for r in rows if isinstance(r, dict)}

    def _filtered(self, kind: str, filt: dict[str, str]) -> str:
        if self.items:
            camel = {CAMEL.get(k, k): v for k, v in filt.items()}
            select = ["id", CAMEL["COMPANY_ID"], "fm"]
            query = {"entityTypeId": ENTITY_TYPE_IDS[kind], "filter": camel, "select": select}
            return "crm.item.list?" + encode_form(query)
        return f"crm.{kind}.list?" + encode_form(
            {"filter": filt, "select": ["ID", "COMPANY_ID", "PHONE"]}
        )

    def row(self, result: Any) -> dict[str, Any]:
        """A ``get`` answer's row, in the internal shape."""
        if self.items:
            item = result.get("item") if isinstance(result, dict) else None
            return classic_row(item) if isinstance(item, dict) else {}
        return result if isinstance(result, dict) else {}


ITEMS = Dialect(items=True)
CLASSIC = Dialect(items=False)


def classic_row(item: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in item.items():
        name = _CLASSIC.get(key, key)
        if name == "PHONE":
            value = [
                {"VALUE": p.get("value")}
                for p in value or []
                if isinstance(p, dict) and p.get("typeId") == "PHONE"
            ]
        elif name == "ID":
            value = str(value)
        row[name] = value
    return row


def method_missing(error: Any) -> bool:
    return isinstance(error, dict) and error.get("error") == "ERROR_METHOD_NOT_FOUND"
