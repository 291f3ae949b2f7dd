"""The status lifecycle's view of a real portal, through the Bitrix24 REST client.

The status is an enumeration user field (``CALLGUARD_STATUS_FIELD``): a company holds a list item
ID, and the item's ``XML_ID`` is the status code (reference §4.2). The item list is the REST
directory's :class:`gateway.crm.statusfield.StatusField`, shared with lookups.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.crm.client import BitrixClient, BitrixError
from gateway.crm.statusfield import StatusField
from gateway.portal.statuses import CompanyState, Department

# The guard runs in the background: a REST call may take a while without holding up a call popup.
CALL_TIMEOUT = 10.0


class RestStatusPortal:
    def __init__(
        self, client: BitrixClient, field: StatusField, timeout: float = CALL_TIMEOUT
    ) -> None:
        self.client = client
        self.field = field
        self.timeout = timeout

    async def call(self, method: str, params: Mapping[str, Any]) -> Any:
        deadline = time.monotonic() + self.timeout
        answer = await self.client.call(method, params, deadline=deadline, background=True)
        return answer.result

    async def items(self, refresh: bool = False) -> dict[str, str]:
        codes = None if refresh else self.field.codes()
        if codes is None:
            codes = await self.field.load(self.client, time.monotonic() + self.timeout)
        return codes

    async def company(self, company_id: str) -> CompanyState | None:
        try:
            row = await self.call("crm.company.get", {"id": company_id})
        except BitrixError as err:
            if err.status == 400 and err.description == "Not found":
                return None
            raise
        return CompanyState(
            id=str(row["ID"]),
            title=str(row.get("TITLE") or ""),
            assigned_by=str(row.get("ASSIGNED_BY_ID") or ""),
            status=await self._code(row.get(self.field.name)),
            modified_by=_ident(row.get("MODIFY_BY_ID")),
        )

    async def _code(self, raw: Any) -> str | None:
        if isinstance(raw, list):
            raw = raw[0] if raw else None
        if raw in (None, "", False, 0, "0"):
            return None
        item = str(raw)
        codes = await self.items()
        if item not in codes:
            codes = await self.items(refresh=True)
        # An item without a code is still a value: judged as a change, never written back.
        return codes.get(item) or f"#{item}"

    async def set_status(self, company_id: str, status: str | None) -> None:
        item = ""
        if status:
            ids = {code: ident for ident, code in (await self.items()).items() if code}
            if status not in ids:
                ids = {c: i for i, c in (await self.items(refresh=True)).items() if c}
            item = ids[status]
        await self.call("crm.company.update", {"id": company_id, "fields": {self.field.name: item}})

    async def user_departments(self, user_id: str) -> tuple[str, ...]:
        rows = await self.call("user.get", {"ID": user_id})
        user = rows[0] if rows else {}
        return tuple(str(d) for d in user.get("UF_DEPARTMENT") or [])

    async def departments(self, ids: Sequence[str]) -> dict[str, Department]:
        rows = await self.call("department.get", {"ID": list(ids)})
        # PARENT and UF_HEAD are absent, not empty, when a department has none (reference §5).
        return {
            str(r["ID"]): Department(
                str(r["ID"]), _ident(r.get("PARENT")), _ident(r.get("UF_HEAD"))
            )
            for r in rows or []
        }

    async def user_name(self, user_id: str) -> str | None:
        rows = await self.call("user.get", {"ID": user_id})
        if not rows:
            return None
        name = " ".join(str(rows[0].get(k) or "").strip() for k in ("NAME", "LAST_NAME"))
        return name.strip() or None

    async def notify(self, user_id: str, message: str) -> None:
        await self.call("im.notify.system.add", {"USER_ID": user_id, "MESSAGE": message})


def _ident(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text if text.isdigit() and text != "0" else None
