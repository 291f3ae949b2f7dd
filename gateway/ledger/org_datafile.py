"""The org chart of the embedded data file (demo, tests, a portal described by a file).
Notifications go to the data file's list, which the demo page shows."""

from __future__ import annotations

from collections.abc import Collection

from gateway.crm.dataset import Dataset
from gateway.portal.status_datafile import DataFileStatusPortal
from gateway.portal.statuses import Department


class DataFileOrg:
    def __init__(self, data: Dataset, portal: DataFileStatusPortal | None = None) -> None:
        self.data = data
        self.portal = portal or DataFileStatusPortal(data)

    @property
    def admins(self) -> tuple[str, ...]:
        return tuple(u.id for u in self.data.users.values() if u.admin)

    async def departments(self) -> dict[str, Department]:
        return {d.id: Department(d.id, d.parent, d.head) for d in self.data.departments.values()}

    async def members(self, department_ids: Collection[str]) -> dict[str, str]:
        wanted = set(department_ids)
        return {u.id: u.name for u in self.data.users.values() if wanted & set(u.departments)}

    async def names(self, user_ids: Collection[str]) -> dict[str, str]:
        return {u: self.data.users[u].name for u in user_ids if u in self.data.users}

    async def notify(self, user_id: str, message: str) -> None:
        await self.portal.notify(user_id, message)
