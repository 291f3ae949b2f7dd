"""The company status lifecycle: the initial status for new companies and the change guard.

Rules (issue 5):
- a new company (created, or converted from a lead: both arrive as ONCRMCOMPANYADD) gets the rules
  file's initial status (``PENDING``): its baseline is the initial status, so a status chosen at
  creation is judged like any change from it;
- only the head of the responsible manager's department, the head of any department above it, or a
  portal administrator (``CALLGUARD_ADMINS``) may change a company's status. A head is not their
  own head: a responsible manager who heads their department needs the head above.
- any other change, the responsible manager's own included, is reverted to the last approved status
  and whoever made it (``MODIFY_BY_ID``) gets a portal notification naming who may change it.

Who may decide is pure (:func:`approvers`, :func:`judge`); :class:`StatusGuard` reads the portal
through :class:`StatusPortal` and remembers approved statuses in an :class:`ApprovedStore`.

No revert loop: the guard's own revert comes back as an update whose status equals the approved
one, and an update that leaves the status at its approved value is never judged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.portal.approved import ApprovedStore
from rules.policy import Policy

log = logging.getLogger("callguard.statuses")

# A department tree deeper than this is broken data (a cycle or a runaway chain), not a company.
MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Department:
    id: str
    parent: str | None = None
    head: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    why: str


def approvers(
    responsible: str, departments_of: Sequence[str], departments: Mapping[str, Department]
) -> tuple[str, ...]:
    """Heads who may change the status of ``responsible``'s companies, nearest first.

    For each department of the responsible manager: its head, then the head of each department
    above it up to the root. The manager is never their own approver.
    """
    out: list[str] = []
    for start in departments_of:
        seen: set[str] = set()
        current: str | None = start
        while current is not None and current not in seen and len(seen) < MAX_DEPTH:
            seen.add(current)
            dept = departments.get(current)
            if dept is None:
                break
            if dept.head and dept.head != responsible and dept.head not in out:
                out.append(dept.head)
            current = dept.parent
    return tuple(out)


def judge(
    actor: str | None, responsible: str, heads: Sequence[str], admins: Sequence[str]
) -> Verdict:
    """May ``actor`` change the status of a company that ``responsible`` manages?"""
    if actor is None:
        return Verdict(False, "the portal did not say who changed it")
    if actor in admins:
        return Verdict(True, f"user {actor} is a portal administrator")
    if actor in heads:
        return Verdict(True, f"user {actor} is a head above the responsible manager {responsible}")
    if actor == responsible:
        return Verdict(False, f"user {actor} is the responsible manager")
    return Verdict(False, f"user {actor} is not a head above the responsible manager {responsible}")


@dataclass(frozen=True, slots=True)
class CompanyState:
    id: str
    title: str
    assigned_by: str
    status: str | None
    modified_by: str | None


class StatusPortal(Protocol):
    """What the guard needs from the portal (REST, or the data file for the demo)."""

    async def company(self, company_id: str) -> CompanyState | None: ...

    async def set_status(self, company_id: str, status: str | None) -> None: ...

    async def user_departments(self, user_id: str) -> tuple[str, ...]: ...

    async def departments(self, ids: Sequence[str]) -> dict[str, Department]: ...

    async def user_name(self, user_id: str) -> str | None: ...

    async def notify(self, user_id: str, message: str) -> None: ...


Action = Literal["initial", "approved", "reverted", "unchanged", "bootstrap", "gone"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the guard did with one change; ``status`` is the company's status afterwards."""

    company_id: str
    action: Action
    status: str | None
    actor: str | None = None
    why: str = ""
    notified: str | None = None

    @property
    def changed_portal(self) -> bool:
        return self.action in ("initial", "reverted")

    def to_dict(self) -> dict[str, object]:
        return {
            "company_id": self.company_id,
            "action": self.action,
            "status": self.status,
            "actor": self.actor,
            "why": self.why,
            "notification": self.notified,
        }


def _log_judged(state: CompanyState, baseline: str, action: str, verdict: Verdict) -> None:
    """One INFO line per approval or revert, naming the company and who changed its status."""
    log.info(
        "company %s %r: status %r -> %r by user %s %s (%s)",
        state.id,
        state.title,
        baseline,
        state.status or "",
        state.modified_by or "?",
        action,
        verdict.why,
    )


class StatusGuard:
    def __init__(
        self, portal: StatusPortal, store: ApprovedStore, policy: Policy, admins: Sequence[str]
    ) -> None:
        self.portal = portal
        self.store = store
        self.policy = policy
        self.admins = tuple(admins)

    async def observe(self, company_id: str) -> None:
        """Record the portal's current status as approved if nothing is recorded yet."""
        async with self.store.lock(company_id):
            if await self.store.get(company_id) is None:
                state = await self.portal.company(company_id)
                if state is not None:
                    await self.store.set(company_id, state.status or "")

    async def on_delete(self, company_id: str) -> None:
        async with self.store.lock(company_id):
            await self.store.forget(company_id)

    async def on_change(self, company_id: str, created: bool = False) -> Outcome:
        """Judge the company's current status against the approved one; revert if needed."""
        async with self.store.lock(company_id):
            return await self._judge(company_id, created)

    async def _judge(self, company_id: str, created: bool) -> Outcome:
        state = await self.portal.company(company_id)
        if state is None:
            await self.store.forget(company_id)
            return Outcome(company_id, "gone", None)
        current = state.status or ""
        recorded = await self.store.get(company_id)
        if created:
            baseline = self.policy.initial_status
        elif recorded is None:
            # First sight without a record (no Redis, or a company older than the install):
            # the portal's value is all we know, so it becomes the approved one.
            await self.store.set(company_id, current)
            log.info("company %s: no approved status recorded, taking %r", company_id, current)
            return Outcome(company_id, "bootstrap", state.status)
        else:
            baseline = recorded
        if current == baseline:
            await self.store.set(company_id, baseline)
            return Outcome(company_id, "unchanged", state.status)
        if created and not current:
            await self.portal.set_status(company_id, baseline)
            await self.store.set(company_id, baseline)
            log.info("company %s: new, status set to %s", company_id, baseline)
            return Outcome(company_id, "initial", baseline, state.modified_by, "a new company")
        heads = await self._heads(state.assigned_by)
        verdict = judge(state.modified_by, state.assigned_by, heads, self.admins)
        if verdict.allowed:
            await self.store.set(company_id, current)
            _log_judged(state, baseline, "approved", verdict)
            return Outcome(company_id, "approved", state.status, state.modified_by, verdict.why)
        await self.portal.set_status(company_id, baseline or None)
        await self.store.set(company_id, baseline)
        _log_judged(state, baseline, "reverted", verdict)
        notified = None
        if state.modified_by is not None:
            notified = await self._message(state, baseline, current, heads)
            await self.portal.notify(state.modified_by, notified)
        return Outcome(
            company_id, "reverted", baseline or None, state.modified_by, verdict.why, notified
        )

    async def _heads(self, responsible: str) -> tuple[str, ...]:
        own = await self.portal.user_departments(responsible)
        known: dict[str, Department] = {}
        wanted = [d for d in own if d]
        # Walk up level by level: one portal request per level, not one per department.
        for _ in range(MAX_DEPTH):
            wanted = [d for d in dict.fromkeys(wanted) if d not in known]
            if not wanted:
                break
            found = await self.portal.departments(wanted)
            for dep_id in wanted:
                known[dep_id] = found.get(dep_id, Department(dep_id))
            wanted = [p for d in found.values() if (p := d.parent) is not None]
        return approvers(responsible, own, known)

    async def _message(
        self, state: CompanyState, restored: str, attempted: str, heads: Sequence[str]
    ) -> str:
        names = [await self.portal.user_name(h) or f"#{h}" for h in heads[:3]]
        ru_who = ", ".join(names) if names else "руководитель отдела"
        en_who = ", ".join(names) if names else "the head of department"
        old_ru, old_en = self._names(restored)
        new_ru, new_en = self._names(attempted)
        return (
            f"Статус компании «{state.title}» не изменён: «{new_ru}» возвращён на «{old_ru}». "
            f"Менять статус могут руководитель отдела ответственного менеджера или выше "
            f"({ru_who}) и администраторы портала.\n"
            f"(The status of company “{state.title}” was not changed: “{new_en}” was reverted "
            f"to “{old_en}”. Only the responsible manager's head of department or a head above "
            f"({en_who}) and portal administrators may change it.)"
        )

    def _names(self, code: str) -> tuple[str, str]:
        if not code:
            return "без статуса", "no status"
        status = self.policy.status(code)
        if status is None:
            return code, code
        return status.name, status.name_en or status.name
