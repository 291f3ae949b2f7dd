"""``crm.item.get`` / ``crm.item.list``: the current CRM API over the same records (reference §8a).

Shapes from Bitrix24's REST docs (github.com/bitrix24/b24restdocs,
``api-reference/crm/universal/crm-item-list.md`` and ``crm-item-add.md``): ``entityTypeId`` 1 lead,
3 contact, 4 company; camelCase fields (``id``, ``title``, ``name``, ``secondName``,
``lastName``, ``assignedById``, ``stageId`` for a lead's status, ``companyId``, ``contactId``,
a contact's ``companyIds``); phones in the multifield array ``fm`` of
``{typeId, valueType, value}``; ids as integers; user fields as ``ufCrm...`` unless
``useOriginalUfNames=Y``. ``list`` answers ``{"items": [...]}`` with ``total``/``next``, ``get``
answers ``{"item": {...}}``. An unknown ``entityTypeId`` is 400 ``NOT_FOUND`` (documented).
UNCONFIRMED, modelled conservatively: ``fm`` comes only when selected by name (as ``PHONE`` in the
classic API), and the error for a missing item (``NOT_FOUND``, "Element not found").
"""

from __future__ import annotations

from typing import Any

from gateway.crm.dialect import CAMEL
from gateway.tools.fakeportal.methods import Reply, arg, matches, page
from gateway.tools.fakeportal.store import PortalStore, RestError

ENTITY_TYPES = {"1": "lead", "3": "contact", "4": "company"}
# classic name -> crm.item name: the names the gateway reads (one table, from the same docs), and
# a few more the fake shows.
FIELDS = {
    **{k: v for k, v in CAMEL.items() if k != "PHONE"},
    "CREATED_BY_ID": "createdBy",
    "MODIFY_BY_ID": "updatedBy",
    "TYPE_ID": "typeId",
    "COMPANY_TYPE": "typeId",
    "IS_MY_COMPANY": "isMyCompany",
}
CLASSIC = {v: k for k, v in FIELDS.items()}
INTEGERS = {"id", "assignedById", "createdBy", "updatedBy", "companyId", "contactId"}


class Items:
    def __init__(self, store: PortalStore) -> None:
        self.store = store

    def kind(self, params: dict[str, Any]) -> str:
        kind = ENTITY_TYPES.get(str(arg(params, "entityTypeId") or ""))
        if kind is None:
            raise RestError(400, "NOT_FOUND", "Smart process not found")
        return kind

    def get(self, params: dict[str, Any]) -> Reply:
        kind = self.kind(params)
        try:
            rec = self.store.record(kind, arg(params, "id"))
        except RestError:
            raise RestError(400, "NOT_FOUND", "Element not found") from None
        original = _yes(arg(params, "useOriginalUfNames"))
        row = item(self.store.view(kind, rec), ["*", "fm"], original)
        if kind == "company":
            row["contactIds"] = [int(c) for c in self.store.company_contacts(rec["ID"])]
        return Reply({"item": row})

    def list(self, params: dict[str, Any]) -> Reply:
        kind = self.kind(params)
        original = _yes(arg(params, "useOriginalUfNames"))
        select = arg(params, "select") or ["*"]
        select = list(select.values()) if isinstance(select, dict) else list(select)
        filt = arg(params, "filter") or {}
        classic = (
            {_classic_key(str(k), original): v for k, v in filt.items()}
            if isinstance(filt, dict)
            else {}
        )
        rows = [self.store.view(kind, r) for r in candidates(self.store, kind, classic)]
        rows = sorted((r for r in rows if matches(r, classic)), key=lambda r: int(r["ID"]))
        answer = page([item(r, select, original) for r in rows], params)
        return Reply({"items": answer.result}, answer.total, answer.next)


def candidates(store: PortalStore, kind: str, filt: dict[str, Any]) -> list[dict[str, Any]]:
    """The records a filter can match: those named by an ``@ID``/``ID`` of plain ids (the
    filter itself still decides), else all. Keeps a large fake fast; answers are the same."""
    records = store.records[kind]
    named = filt.get("@ID", filt.get("ID"))
    values = named if isinstance(named, list) else [named] if named is not None else None
    if values and all(isinstance(v, int | str) and str(v).isdigit() for v in values):
        return [records[str(v)] for v in values if str(v) in records]
    return list(records.values())


def item(row: dict[str, Any], select: list[Any], original: bool) -> dict[str, Any]:
    wanted = {str(s) for s in select}
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key == "PHONE":
            continue
        name = FIELDS.get(key) or (_uf_name(key, original) if key.startswith("UF_") else None)
        if name is None or not ("*" in wanted or name in wanted or name == "id"):
            continue
        if name in INTEGERS:
            value = int(value) if value not in (None, "") else None
        elif name == "companyIds":
            value = [int(v) for v in value or []]
        out[name] = value
    if "fm" in wanted:
        out["fm"] = [
            {
                "id": int(p["ID"]),
                "typeId": "PHONE",
                "valueType": p["VALUE_TYPE"],
                "value": p["VALUE"],
            }
            for p in row.get("PHONE") or []
        ]
    return out


def _uf_name(name: str, original: bool) -> str:
    if original:
        return name
    parts = name.split("_")[2:]  # UF_CRM_CALLGUARD_STATUS -> ufCrmCallguardStatus
    return "ufCrm" + "".join(p[:1].upper() + p[1:].lower() for p in parts)


def _classic_key(key: str, original: bool) -> str:
    """``@id`` -> ``@ID``: the filter prefix kept, the field name in the classic spelling."""
    head = len(key) - len(key.lstrip("@!<>=%"))
    prefix, name = key[:head], key[head:]
    if name.startswith("uf") and not original:
        name = "UF_CRM_" + "".join("_" + c if c.isupper() else c.upper() for c in name[5:]).lstrip(
            "_"
        )
    return prefix + CLASSIC.get(name, name)


def _yes(value: Any) -> bool:
    return str(value).upper() in ("Y", "1", "TRUE")
