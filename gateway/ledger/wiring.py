"""Who may see the ledger, chosen by where the directory reads its data (as the status guard's
wiring in gateway/portal/wiring.py): the data file's org chart, or the portal's over REST.
A directory that is neither leaves the report to ``CALLGUARD_ADMINS`` and the digest off."""

from __future__ import annotations

from gateway.ledger.access import Access, OrgChart
from gateway.ledger.org_datafile import DataFileOrg
from gateway.ledger.org_rest import RestOrg
from gateway.portal.status_datafile import DataFileStatusPortal
from gateway.run.runtime import Gateway


def build_access(gateway: Gateway, notices: DataFileStatusPortal | None = None) -> Access:
    """``notices``: the data file's status view, whose notification list the demo page shows."""
    admins: tuple[str, ...] = gateway.settings.admins
    org: OrgChart | None = None
    directory = gateway.directory
    if (data := directory.dataset) is not None:
        chart = DataFileOrg(data, notices)
        admins = (*admins, *chart.admins)
        org = chart
    elif (rest := directory.rest) is not None:
        org = RestOrg(rest.client)
    return Access(org, admins)
