"""The portal integration of one gateway: the event intake with the status guard that fits the
directory in use, chosen by what the directory declares it is backed by.

- A data file (``directory.dataset``): the guard works on the data file
  (:mod:`gateway.portal.status_datafile`); administrators are ``CALLGUARD_ADMINS`` plus the data
  file's ``"admin": true`` users.
- A portal over REST (``directory.rest``): the guard works through the directory's REST client and
  shares its status field.

Either way a CRM event refreshes the lookup cache through ``directory.changed``.
"""

from __future__ import annotations

from gateway.portal.approved import open_store
from gateway.portal.intake import EventIntake
from gateway.portal.status_datafile import DataFileStatusPortal
from gateway.portal.status_rest import RestStatusPortal
from gateway.portal.statuses import StatusGuard
from gateway.run.runtime import Gateway


def build_intake(gateway: Gateway) -> tuple[EventIntake, DataFileStatusPortal | None]:
    """The intake, and the data file's status view when there is one (the demo edits it)."""
    settings = gateway.settings
    directory = gateway.directory
    guard: StatusGuard | None = None
    editable: DataFileStatusPortal | None = None
    if (data := directory.dataset) is not None:
        admins = (*settings.admins, *(u.id for u in data.users.values() if u.admin))
        editable = DataFileStatusPortal(data)
        store = open_store(gateway.database, settings.redis_url)
        guard = StatusGuard(editable, store, gateway.policy, admins)
    elif (rest := directory.rest) is not None:
        portal = RestStatusPortal(rest.client, rest.status_field)
        store = open_store(gateway.database, settings.redis_url)
        guard = StatusGuard(portal, store, gateway.policy, settings.admins)
    intake = EventIntake(
        settings.webhook_token,
        gateway.calls,
        gateway.metrics.registry,
        refresh=directory.changed,
        guard=guard,
    )
    return intake, editable
