"""The portal integration of one gateway: which status guard and which cache refresh fit the
directory in use, the ``/bitrix/events`` route, and the demo's status-change route.

- Embedded data file: the guard works on the data file (:mod:`gateway.portal.status_datafile`); a
  change re-indexes the file. Administrators are ``CALLGUARD_ADMINS`` plus the data file's
  ``"admin": true`` users.
- Bitrix24 REST: the guard works through the REST directory's client; a CRM event drops the
  entity's numbers from the lookup cache (those cached for it and those it has now).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.crm.cache import CachedDirectory
from gateway.crm.datafile import DataFileDirectory, Dataset
from gateway.crm.rest import BitrixDirectory
from gateway.portal.approved import open_store
from gateway.portal.intake import Portal, Refresh
from gateway.portal.status_datafile import DataFileStatusPortal, UnknownEntity
from gateway.portal.status_rest import RestStatusPortal
from gateway.portal.statuses import StatusGuard
from gateway.run.runtime import Gateway
from gateway.web.http import failure, json_response
from rules.phones import try_normalize


def build_portal(gateway: Gateway) -> Portal:
    settings = gateway.settings
    directory = gateway.directory
    cache = directory if isinstance(directory, CachedDirectory) else None
    source = cache.inner if cache is not None else directory
    guard: StatusGuard | None = None
    refresh: Refresh | None = None
    if isinstance(source, DataFileDirectory):
        data = source.data
        admins = (*settings.admins, *(u.id for u in data.users.values() if u.admin))
        store = open_store(settings.redis_url)
        guard = StatusGuard(DataFileStatusPortal(data), store, gateway.policy, admins)
        refresh = _datafile_refresh(source, cache)
    elif isinstance(source, BitrixDirectory):
        rest = RestStatusPortal(source.client, settings.status_field)
        store = open_store(settings.redis_url)
        guard = StatusGuard(rest, store, gateway.policy, settings.admins)
        if cache is not None:
            refresh = _rest_refresh(rest, cache, settings.region)
    return Portal(
        settings.webhook_token,
        gateway.calls,
        gateway.metrics.registry,
        refresh=refresh,
        guard=guard,
    )


def _datafile_refresh(directory: DataFileDirectory, cache: CachedDirectory | None) -> Refresh:
    async def refresh(kind: str, entity_id: str, deleted: bool) -> set[str]:
        directory.reindex()
        phones = entity_phones(directory.data, kind, entity_id, directory.region)
        if cache is not None:
            phones |= await cache.invalidate_entity(kind, entity_id)
            for phone in phones:
                await cache.invalidate_phone(phone)
        return phones

    return refresh


def _rest_refresh(rest: RestStatusPortal, cache: CachedDirectory, region: str) -> Refresh:
    async def refresh(kind: str, entity_id: str, deleted: bool) -> set[str]:
        # The numbers cached for the entity (its old ones), then the ones it has now: a new
        # phone may sit in the cache as "nothing found" until dropped here.
        old = await cache.invalidate_entity(kind, entity_id)
        new = set() if deleted else await rest.entity_phones(kind, entity_id, region)
        for phone in new - old:
            await cache.invalidate_phone(phone)
        return old | new

    return refresh


def entity_phones(data: Dataset, kind: str, entity_id: str, region: str) -> set[str]:
    """The phone keys whose lookups show this entity: its own numbers and, for a company, those
    of its contacts and leads (they reach it through links)."""
    raw: list[str] = []
    if kind == "company" and entity_id in data.companies:
        raw += data.companies[entity_id].phones
        raw += [
            p
            for c in data.contacts.values()
            if entity_id in data.contact_companies(c.id)
            for p in c.phones
        ]
        raw += [p for lead in data.leads.values() if lead.company == entity_id for p in lead.phones]
    elif kind == "contact" and entity_id in data.contacts:
        raw += data.contacts[entity_id].phones
    elif kind == "lead" and entity_id in data.leads:
        raw += data.leads[entity_id].phones
    return {key for p in raw if (key := try_normalize(p, region))}


def portal_routes() -> list[Route]:
    return [Route("/bitrix/events", _events, methods=["POST"])]


def demo_status_routes() -> list[Route]:
    return [Route("/demo/api/company-status", _company_status, methods=["POST"])]


async def _events(request: Request) -> Response:
    portal: Portal = request.app.state.portal
    return await portal.receive(request)


async def _company_status(request: Request) -> Response:
    """Demo only: ``{"company_id", "status", "as_user"}`` -> what the guard did, as in a portal."""
    portal: Portal = request.app.state.portal
    gateway: Gateway = request.app.state.gateway
    guard = portal.guard
    if guard is None or not isinstance(guard.portal, DataFileStatusPortal):
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
        outcome = await guard.portal.change_status(guard, str(company), status, str(user))
    except UnknownEntity as err:
        return failure(404, "not_found", str(err))
    portal.judged(outcome)
    # A reverted or unchanged status leaves every lookup as it was: nothing to decide again.
    if portal.refresh is not None and outcome.action in ("approved", "bootstrap", "initial"):
        for phone in sorted(await portal.refresh("company", str(company), False)):
            await gateway.calls.redecide(phone)
    return json_response(outcome.to_dict())
