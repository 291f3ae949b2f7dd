"""The status lifecycle over the embedded data file, so the demo shows what a portal would do.

A data file has no portal to send events, so :meth:`DataFileStatusPortal.change_status` plays
the part of a user editing a company in the portal: it records who made the change and then runs
the same :class:`gateway.portal.statuses.StatusGuard` that judges the portal's
ONCRMCOMPANYUPDATE events.
Notifications are kept in memory (newest last) for the demo page to show.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.crm.dataset import Dataset
from gateway.portal.statuses import CompanyState, Department, Outcome, StatusGuard

MAX_NOTIFICATIONS = 100


@dataclass(frozen=True, slots=True)
class Notification:
    user_id: str
    message: str


class UnknownEntity(LookupError):
    """The demo asked about a company or a user the data file does not have."""


class DataFileStatusPortal:
    def __init__(self, data: Dataset) -> None:
        self.data = data
        self.notifications: deque[Notification] = deque(maxlen=MAX_NOTIFICATIONS)
        self._modified_by: dict[str, str] = {}

    async def company(self, company_id: str) -> CompanyState | None:
        rec = self.data.companies.get(company_id)
        if rec is None:
            return None
        return CompanyState(
            rec.id, rec.title, rec.assigned_by, rec.status, self._modified_by.get(company_id)
        )

    async def set_status(self, company_id: str, status: str | None) -> None:
        rec = self.data.companies.get(company_id)
        if rec is not None:
            rec.status = status

    async def user_departments(self, user_id: str) -> tuple[str, ...]:
        user = self.data.users.get(user_id)
        return tuple(user.departments) if user else ()

    async def departments(self, ids: Sequence[str]) -> dict[str, Department]:
        out: dict[str, Department] = {}
        for dep_id in ids:
            rec = self.data.departments.get(dep_id)
            if rec is not None:
                out[dep_id] = Department(rec.id, rec.parent, rec.head)
        return out

    async def user_name(self, user_id: str) -> str | None:
        return self.data.user_name(user_id)

    async def notify(self, user_id: str, message: str) -> None:
        self.notifications.append(Notification(user_id, message))

    async def change_status(
        self, guard: StatusGuard, company_id: str, status: str | None, as_user: str
    ) -> Outcome:
        """``as_user`` sets the company's status in the "portal"; the guard then judges it."""
        rec = self.data.companies.get(company_id)
        if rec is None:
            raise UnknownEntity(f"no company with id {company_id}")
        if as_user not in self.data.users:
            raise UnknownEntity(f"no user with id {as_user}")
        # Record the approved status before the edit, as the portal's history would have it.
        await guard.observe(company_id)
        rec.status = status
        self._modified_by[company_id] = as_user
        return await guard.on_change(company_id)
