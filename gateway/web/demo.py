"""Demo-only routes (``settings.demo``): the demo page, its users and numbers, and tokens.

These answer anyone who asks, which is why they exist only in ``callguard demo``. Shapes:
``GET /demo/api/users`` -> ``{"users": [{"id", "name", "departments": [names]}],
"numbers": [{"phone", "label"}], "companies": [{"id", "title", "status", "assigned_by",
"assigned_name", "phones"}], "statuses": [{"code", "name", "name_en"}]}`` (companies with their
status and responsible manager, and the rules file's statuses, for the status panel);
``GET /demo/api/token?user=ID`` -> ``{"token", "user_id"}``;
``POST /demo/api/company-status {"company_id", "status", "as_user"}`` -> what the status guard
did (:meth:`gateway.portal.statuses.Outcome.to_dict`), as a portal user's edit would be judged.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from gateway.crm.dataset import Dataset
from gateway.live.tokens import issue_token
from gateway.portal.intake import EventIntake
from gateway.portal.status_datafile import DataFileStatusPortal, UnknownEntity
from gateway.run.runtime import Gateway
from gateway.web.http import SnippetFiles
from gateway.web.responses import failure, json_response
from rules.policy import Policy

TOKEN_TTL = 12 * 3600.0


def demo_routes(static_dir: Path) -> list[Route | Mount]:
    return [
        Route("/demo/api/users", users, methods=["GET"]),
        Route("/demo/api/token", token, methods=["GET"]),
        Route("/demo/api/company-status", company_status, methods=["POST"]),
        Mount("/demo", SnippetFiles(directory=static_dir / "demo", html=True, check_dir=False)),
    ]


async def users(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    data = gateway.dataset or Dataset()
    return json_response(
        {
            "users": list_users(data),
            "numbers": list_numbers(data),
            "companies": list_companies(data),
            "statuses": list_statuses(gateway.policy),
        }
    )


async def token(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    data = gateway.dataset or Dataset()
    user_id = request.query_params.get("user", "").strip()
    if user_id not in data.users:
        return failure(404, "unknown_user", f"no demo user with id {user_id!r}")
    return json_response(
        {"token": issue_token(gateway.settings.secret, user_id, TOKEN_TTL), "user_id": user_id}
    )


async def company_status(request: Request) -> Response:
    """A user changes a company's status in the "portal" (the data file); the guard judges it."""
    intake: EventIntake = request.app.state.intake
    gateway: Gateway = request.app.state.gateway
    statuses: DataFileStatusPortal | None = request.app.state.demo_statuses
    guard = intake.guard
    if guard is None or statuses is None:
        return failure(404, "not_available", "company statuses are changed in the portal")
    try:
        doc = await request.json()
    except ValueError:
        return failure(422, "invalid_json", "request body is not valid JSON")
    fields = doc if isinstance(doc, dict) else {}
    company, status, user = (fields.get(k) for k in ("company_id", "status", "as_user"))
    if not isinstance(company, str | int) or not isinstance(user, str | int):
        return failure(422, "invalid_request", "company_id and as_user are required ids")
    if status is not None and (
        not isinstance(status, str) or gateway.policy.status(status) is None
    ):
        known = ", ".join(gateway.policy.status_codes)
        return failure(422, "invalid_request", f"status must be one of {known} or null")
    try:
        outcome = await statuses.change_status(guard, str(company), status, str(user))
    except UnknownEntity as err:
        return failure(404, "not_found", str(err))
    intake.judged(outcome)
    # A reverted or unchanged status leaves every lookup as it was: nothing to decide again.
    if intake.refresh is not None and outcome.action in ("approved", "bootstrap", "initial"):
        for phone in sorted(await intake.refresh("company", str(company), False)):
            await gateway.calls.redecide(phone)
    return json_response(outcome.to_dict())


def list_users(data: Dataset) -> list[dict[str, object]]:
    return [
        {
            "id": u.id,
            "name": u.name,
            "departments": [
                data.departments[d].name for d in u.departments if d in data.departments
            ],
        }
        for u in data.users.values()
    ]


def list_companies(data: Dataset) -> list[dict[str, object]]:
    """Each company with its current status and responsible manager (the status panel's list)."""
    return [
        {
            "id": c.id,
            "title": c.title,
            "status": c.status,
            "assigned_by": c.assigned_by,
            "assigned_name": data.user_name(c.assigned_by) or f"#{c.assigned_by}",
            "phones": list(c.phones),
        }
        for c in data.companies.values()
    ]


def list_statuses(policy: Policy) -> list[dict[str, str]]:
    return [{"code": s.code, "name": s.name, "name_en": s.name_en} for s in policy.statuses]


def list_numbers(data: Dataset) -> list[dict[str, str]]:
    """One entry per stored phone, labelled with what the number belongs to and whose it is."""
    out: list[dict[str, str]] = []

    def owner(user_id: str) -> str:
        return data.user_name(user_id) or f"#{user_id}"

    for c in data.companies.values():
        label = f"{c.title} — company, {c.status or 'no status'}, {owner(c.assigned_by)}"
        out.extend({"phone": p, "label": label} for p in c.phones)
    for p_ in data.contacts.values():
        label = f"{p_.name} — contact, {owner(p_.assigned_by)}"
        out.extend({"phone": p, "label": label} for p in p_.phones)
    for lead in data.leads.values():
        label = f"{lead.title} — lead, {lead.status or 'no status'}, {owner(lead.assigned_by)}"
        out.extend({"phone": p, "label": label} for p in lead.phones)
    return out
