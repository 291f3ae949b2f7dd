"""The org chart of a real portal over REST: ``department.get`` for the tree, ``user.get``
filtered by ``UF_DEPARTMENT`` (or ``ID``) for people, ``im.notify.system.add`` to notify.
Lists come 50 rows a page; every page is read (bounded by :data:`MAX_PAGES`)."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from typing import Any

from gateway.crm.client import BitrixClient
from gateway.portal.statuses import Department

CALL_TIMEOUT = 10.0
MAX_PAGES = 200  # 10 000 departments or users: a larger portal is not one this report serves


class RestOrg:
    def __init__(self, client: BitrixClient, timeout: float = CALL_TIMEOUT) -> None:
        self.client = client
        self.timeout = timeout

    async def _all(self, method: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        start: int | None = 0
        for _ in range(MAX_PAGES):
            answer = await self.client.call(
                method, {**params, "start": start}, deadline=time.monotonic() + self.timeout
            )
            rows.extend(r for r in answer.result or [] if isinstance(r, dict))
            start = answer.next
            if start is None:
                break
        return rows

    async def departments(self) -> dict[str, Department]:
        rows = await self._all("department.get", {})
        return {
            str(r["ID"]): Department(
                str(r["ID"]), _ident(r.get("PARENT")), _ident(r.get("UF_HEAD"))
            )
            for r in rows
        }

    async def members(self, department_ids: Collection[str]) -> dict[str, str]:
        if not department_ids:
            return {}
        rows = await self._all("user.get", {"filter": {"UF_DEPARTMENT": sorted(department_ids)}})
        return {str(r["ID"]): _name(r) for r in rows}

    async def names(self, user_ids: Collection[str]) -> dict[str, str]:
        if not user_ids:
            return {}
        rows = await self._all("user.get", {"filter": {"ID": sorted(user_ids)}})
        return {str(r["ID"]): _name(r) for r in rows}

    async def notify(self, user_id: str, message: str) -> None:
        await self.client.call(
            "im.notify.system.add",
            {"USER_ID": user_id, "MESSAGE": message},
            deadline=time.monotonic() + self.timeout,
        )


def _name(row: Mapping[str, Any]) -> str:
    name = " ".join(str(row.get(k) or "").strip() for k in ("NAME", "LAST_NAME")).strip()
    return name or f"#{row.get('ID')}"


def _ident(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text if text.isdigit() and text != "0" else None
