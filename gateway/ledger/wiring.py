"""Who may see the ledger and who gets the digest, chosen by where the directory reads its
data (as the status guard's wiring in gateway/portal/wiring.py): the data file's org chart,
or the portal's over REST.
A directory that is neither leaves the report to ``CALLGUARD_ADMINS`` and the digest off."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from gateway.crm import Directory
from gateway.ledger.access import Access, OrgChart
from gateway.ledger.digest import Digest, parse_clock
from gateway.ledger.org_datafile import DataFileOrg
from gateway.ledger.org_rest import RestOrg
from gateway.portal.status_datafile import DataFileStatusPortal
from gateway.run.runtime import Gateway


def org_chart(
    directory: Directory, notices: DataFileStatusPortal | None = None
) -> tuple[OrgChart | None, tuple[str, ...]]:
    """The directory's org chart and the administrators it names (the data file's).
    ``notices``: the data file's status view, whose notification list the demo page shows."""
    if (data := directory.dataset) is not None:
        chart = DataFileOrg(data, notices)
        return chart, chart.admins
    if (rest := directory.rest) is not None:
        return RestOrg(rest.client), ()
    return None, ()


def build_access(gateway: Gateway, notices: DataFileStatusPortal | None = None) -> Access:
    org, admins = org_chart(gateway.directory, notices)
    return Access(org, (*gateway.settings.admins, *admins))


def build_digest(gateway: Gateway, access: Access) -> Digest | None:
    """The morning digest when ``CALLGUARD_DIGEST_AT`` is set and there is a ledger and an org
    chart to read."""
    s = gateway.settings
    if s.digest_at is None or s.ledger_days == 0 or access.org is None:
        return None
    return Digest(
        gateway.ledger,
        access,
        at=parse_clock(s.digest_at),
        tz=ZoneInfo(s.tz),
        lang=s.lang,
        public_url=s.public_url,
        secret=s.secret,
        link_ttl=s.token_max_ttl,
    )
