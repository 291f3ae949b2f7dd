"""The REST methods the fake portal answers, over :class:`PortalStore` (reference/bitrix24.md).

``Methods.execute(name, params)`` returns a :class:`Reply` or raises :class:`RestError`; the HTTP
layer (server.py) and ``batch`` (batch.py) share it. Params arrive as JSON values or as strings
from form bodies; every method accepts both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.tools.fakeportal.store import KINDS, PortalStore, RestError, as_id

PAGE = 50
MULTI = ("PHONE", "EMAIL", "WEB", "IM", "LINK", "COMPANY_IDS")
_FILTER = re.compile(r"^(>=|<=|!=|=%|%=|!@|>|<|@|%|=|!)?(.+)$")


@dataclass(slots=True)
class Reply:
    result: Any
    total: int | None = None
    next: int | None = None


@dataclass(slots=True)
class Notification:
    id: int
    user_id: str
    message: str
    tag: str | None = None


@dataclass(slots=True)
class Context:
    """Who calls (the webhook's user) and what the webhook may do."""

    user: str = "1"
    scopes: tuple[str, ...] = ("crm", "user", "department", "im", "telephony")
    notifications: list[Notification] = field(default_factory=list)
    # False: a portal without crm.item.* (older box versions) answers ERROR_METHOD_NOT_FOUND.
    item_api: bool = True


Changed = Callable[[str, str, str], None]  # (kind, "ADD"|"UPDATE"|"DELETE", id)


def arg(params: dict[str, Any], name: str, default: Any = None) -> Any:
    """Bitrix reads ``id`` and ``ID`` alike."""
    for key in (name, name.upper(), name.lower()):
        if key in params:
            return params[key]
    return default


def scope_of(method: str) -> str:
    if method.startswith("crm."):
        return "crm"
    if method.startswith(("im.", "department.", "telephony.", "voximplant.")):
        return method.split(".")[0].replace("voximplant", "telephony")
    if method.startswith("user.") and method != "user.admin":
        return "user"
    return "basic"


def page(items: list[dict[str, Any]], params: dict[str, Any]) -> Reply:
    """List paging: 50 rows, ``next`` only when more rows exist, ``start=-1`` drops ``total``."""
    raw = arg(params, "start", 0)
    start = int(raw) if str(raw).lstrip("-").isdigit() else 0
    if start == -1:
        return Reply(items[:PAGE])
    start = max(start, 0)
    rows = items[start : start + PAGE]
    more = start + PAGE < len(items)
    return Reply(rows, total=len(items), next=start + PAGE if more else None)


def _id_key(row: dict[str, Any]) -> int:
    return int(row["ID"])


class Methods:
    def __init__(self, store: PortalStore, ctx: Context, changed: Changed) -> None:
        self.store = store
        self.ctx = ctx
        self.changed = changed
        self.table: dict[str, Callable[[dict[str, Any]], Reply]] = {
            "crm.duplicate.findbycomm": self.findbycomm,
            "crm.contact.company.items.get": self.contact_companies,
            "crm.company.contact.items.get": self.company_contacts,
            "crm.company.userfield.list": self.userfield_list,
            "crm.company.userfield.get": self.userfield_get,
            "crm.company.userfield.add": self.userfield_add,
            "crm.company.userfield.update": self.userfield_update,
            "crm.company.userfield.delete": self.userfield_delete,
            "user.get": self.user_get,
            "user.admin": lambda p: Reply(bool(self.store.users[self.ctx.user]["_ADMIN"])),
            "profile": self.profile,
            "scope": lambda p: Reply(list(self.ctx.scopes)),
            "department.get": self.department_get,
            "im.notify.system.add": self.notify,
        }
        for kind in KINDS:
            for verb in ("get", "list", "add", "update", "delete"):
                self.table[f"crm.{kind}.{verb}"] = self._crud(kind, verb)

    def execute(self, method: str, params: dict[str, Any]) -> Reply:
        handler = self.table.get(method)
        if handler is None or (method.startswith("crm.item.") and not self.ctx.item_api):
            raise RestError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        scope = scope_of(method)
        if scope != "basic" and scope not in self.ctx.scopes:
            raise RestError(403, "insufficient_scope", "The request requires higher privileges.")
        return handler(params)

    # -- CRM entities ------------------------------------------------------------------------
    def _crud(self, kind: str, verb: str) -> Callable[[dict[str, Any]], Reply]:
        store = self.store

        def get(params: dict[str, Any]) -> Reply:
            return Reply(store.view(kind, store.record(kind, arg(params, "id"))))

        def list_(params: dict[str, Any]) -> Reply:
            rows = [store.view(kind, r) for r in store.records[kind].values()]
            rows = [r for r in rows if matches(r, arg(params, "filter") or {})]
            rows = _ordered(rows, arg(params, "order") or {})
            return page([_select(r, arg(params, "select") or []) for r in rows], params)

        def add(params: dict[str, Any]) -> Reply:
            ident = store.add(kind, arg(params, "fields") or {}, self.ctx.user)
            self.changed(kind, "ADD", ident)
            return Reply(int(ident))

        def update(params: dict[str, Any]) -> Reply:
            ident = store.update(
                kind, arg(params, "id"), arg(params, "fields") or {}, self.ctx.user
            )
            self.changed(kind, "UPDATE", ident)
            return Reply(True)

        def delete(params: dict[str, Any]) -> Reply:
            ident = store.delete(kind, arg(params, "id"))
            self.changed(kind, "DELETE", ident)
            return Reply(True)

        return {"get": get, "list": list_, "add": add, "update": update, "delete": delete}[verb]

    def findbycomm(self, params: dict[str, Any]) -> Reply:
        kind = str(arg(params, "type") or "").upper()
        if not kind:
            raise RestError(400, "", "Communication type is not defined")
        if kind not in ("PHONE", "EMAIL"):
            raise RestError(
                400, "", f"Communication type '{kind}' is not supported in current context"
            )
        values = arg(params, "values")
        if isinstance(values, dict):
            values = list(values.values())
        if not isinstance(values, list) or not values:
            raise RestError(400, "", "Communication values is not defined")
        distinct = list(dict.fromkeys(str(v) for v in values))[:20]  # the loop stops at 20
        entity = str(arg(params, "entity_type") or "").upper()
        if entity == "DEAL":
            raise RestError(400, "", "Deal is not supported in current context.")
        if entity and entity not in ("LEAD", "CONTACT", "COMPANY"):
            raise RestError(400, "", f"Entity type '{entity}' is not supported in current context.")
        found: dict[str, list[int]] = {}
        for name in [entity] if entity else ["LEAD", "CONTACT", "COMPANY"]:
            ids = self.store.find_by_phone(name.lower(), distinct) if kind == "PHONE" else []
            if ids:
                found[name] = ids
        return Reply(found or [])  # nothing found is PHP's empty array: []

    def contact_companies(self, params: dict[str, Any]) -> Reply:
        ident = self._owner("contact", params)
        rows = self.store.contact_companies(ident)
        return Reply([_item("COMPANY_ID", c, i) for i, c in enumerate(rows)])

    def company_contacts(self, params: dict[str, Any]) -> Reply:
        ident = self._owner("company", params)
        rows = self.store.company_contacts(ident)
        return Reply([_item("CONTACT_ID", c, i) for i, c in enumerate(rows)])

    def _owner(self, kind: str, params: dict[str, Any]) -> str:
        ident = as_id(arg(params, "id"))
        if ident is None or ident not in self.store.records[kind]:
            raise RestError(400, "", "The parameter ownerEntityID is invalid or not defined.")
        return ident

    # -- user fields -------------------------------------------------------------------------
    def userfield_list(self, params: dict[str, Any]) -> Reply:
        rows = [dict(f) for f in self.store.userfields.values()]
        rows = [r for r in rows if matches(r, arg(params, "filter") or {}, skip=("LANG",))]
        return page(_ordered(rows, arg(params, "order") or {}), params)

    def userfield_get(self, params: dict[str, Any]) -> Reply:
        return Reply(dict(self.store.userfield(arg(params, "id"))))

    def userfield_add(self, params: dict[str, Any]) -> Reply:
        return Reply(self.store.add_userfield(arg(params, "fields") or {}))

    def userfield_update(self, params: dict[str, Any]) -> Reply:
        self.store.update_userfield(arg(params, "id"), arg(params, "fields") or {})
        return Reply(True)

    def userfield_delete(self, params: dict[str, Any]) -> Reply:
        self.store.delete_userfield(arg(params, "id"))
        return Reply(True)

    # -- users, departments, notifications ---------------------------------------------------
    def user_get(self, params: dict[str, Any]) -> Reply:
        reserved = {"sort", "order", "start", "admin_mode", "filter", "select"}
        filt = dict(arg(params, "filter") or {})
        filt.update({k: v for k, v in params.items() if k.lower() not in reserved})
        rows = [{k: v for k, v in u.items() if k != "_ADMIN"} for u in self.store.users.values()]
        return page(sorted([r for r in rows if matches(r, filt)], key=_id_key), params)

    def profile(self, params: dict[str, Any]) -> Reply:
        user = self.store.users[self.ctx.user]
        return Reply(
            {
                "ID": user["ID"],
                "ADMIN": user["_ADMIN"],
                "NAME": user["NAME"],
                "LAST_NAME": user["LAST_NAME"],
                "PERSONAL_GENDER": "",
                "TIME_ZONE": "",
            }
        )

    def department_get(self, params: dict[str, Any]) -> Reply:
        reserved = {"sort", "order", "start"}
        filt = {k: v for k, v in params.items() if k.lower() not in reserved}
        rows = [dict(d) for d in self.store.departments.values() if matches(d, filt)]
        return page(sorted(rows, key=_id_key), params)

    def notify(self, params: dict[str, Any]) -> Reply:
        user = as_id(arg(params, "user_id"))
        message = str(arg(params, "message") or "")
        if user is None:
            raise RestError(400, "USER_ID_EMPTY", "Recipient ID can't be empty")
        if not message.strip():
            raise RestError(400, "MESSAGE_EMPTY", "Message can't be empty")
        note = Notification(len(self.ctx.notifications) + 1, user, message, arg(params, "tag"))
        self.ctx.notifications.append(note)
        return Reply(note.id)


def _item(column: str, ident: str, index: int) -> dict[str, Any]:
    return {
        column: int(ident),
        "SORT": 10 * (index + 1),
        "ROLE_ID": 0,
        "IS_PRIMARY": "Y" if index == 0 else "N",
    }


def _select(row: dict[str, Any], select: Any) -> dict[str, Any]:
    """``*`` is every field but user fields and multifields; ``UF_*`` the user fields (§3.2)."""
    wanted = set(select.values() if isinstance(select, dict) else select) or {"*", "UF_*"}
    out = {}
    for key, value in row.items():
        user_field = key.startswith("UF_")
        if (
            key in wanted
            or key == "ID"
            or ("*" in wanted and not user_field and key not in MULTI)
            or ("UF_*" in wanted and user_field)
        ):
            out[key] = value
    return out


def _ordered(rows: list[dict[str, Any]], order: Any) -> list[dict[str, Any]]:
    items = list(order.items()) if isinstance(order, dict) else []
    for key, direction in reversed(items or [("ID", "ASC")]):
        rows = sorted(
            rows,
            key=lambda r: _sortable(r.get(str(key).upper())),
            reverse=str(direction).upper() == "DESC",
        )
    return rows


def _sortable(value: Any) -> tuple[int, int, str]:
    text = "" if value is None else str(value)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def matches(row: dict[str, Any], filt: Any, skip: tuple[str, ...] = ()) -> bool:
    """The list filter. An empty value is dropped, as Bitrix drops it: ``filter[ID]=`` (say, from a
    ``$result`` reference that did not resolve) filters nothing at all."""
    if not isinstance(filt, dict):
        return True
    for raw_key, raw in filt.items():
        match = _FILTER.match(str(raw_key))
        if not match or match.group(2).upper() in skip:
            continue
        op, name = match.group(1) or "", match.group(2).upper()
        listed = (
            raw if isinstance(raw, list) else list(raw.values()) if isinstance(raw, dict) else [raw]
        )
        wanted = [_text(v) for v in listed if v is not None and str(v) != ""]
        if not wanted:
            continue
        actual = row.get(name)
        if name == "PHONE" or isinstance(actual, list):
            have = [_text(p["VALUE"] if isinstance(p, dict) else p) for p in actual or []]
        else:
            have = [_text(actual)]
        if not _compare(op, have, wanted):
            return False
    return True


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "Y" if value else "N"
    return "" if value is None else str(value)


def _compare(op: str, have: list[str], wanted: list[str]) -> bool:
    if op in ("", "=", "@"):
        return any(h in wanted for h in have)
    if op in ("!", "!=", "!@"):
        return not any(h in wanted for h in have)
    if op in ("%", "=%", "%="):
        return any(w.lower() in h.lower() for h in have for w in wanted)
    target = wanted[0]
    for h in have:
        a, b = (int(h), int(target)) if h.isdigit() and target.isdigit() else (h, target)
        if {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]:  # type: ignore[operator]
            return True
    return False
