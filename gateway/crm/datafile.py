"""The embedded directory: a data file (:mod:`gateway.crm.dataset`) held in memory.

Used by the demo, small teams and tests. Stored phones are matched through ``rules.normalize``.
"""

from __future__ import annotations

from gateway.crm.dataset import CompanyRec, ContactRec, Dataset, LeadRec, id_order, rec_order
from rules.model import Company, Contact, Findings, Lead
from rules.phones import DEFAULT_REGION, try_normalize


def findings_for(data: Dataset, phone: str, region: str = DEFAULT_REGION) -> Findings:
    """Everything in ``data`` whose phone normalises to ``phone`` (an E.164 key)."""

    def matches(phones: list[str]) -> bool:
        return any(try_normalize(p, region) == phone for p in phones)

    leads = [x for x in data.leads.values() if matches(x.phones)]
    contacts = [x for x in data.contacts.values() if matches(x.phones)]
    companies = [x for x in data.companies.values() if matches(x.phones)]
    linked: set[str] = set()
    for contact in contacts:
        linked.update(data.contact_companies(contact.id))
    linked.update(x.company for x in leads if x.company and x.company in data.companies)
    return Findings(
        phone=phone,
        leads=tuple(_lead(data, x) for x in sorted(leads, key=rec_order)),
        contacts=tuple(_contact(data, x) for x in sorted(contacts, key=rec_order)),
        companies=tuple(_company(data, x) for x in sorted(companies, key=rec_order)),
        linked_companies=tuple(
            _company(data, data.companies[i]) for i in sorted(linked, key=id_order)
        ),
    )


class DataFileDirectory:
    """The :class:`gateway.crm.Directory` over an in-memory data file.

    Lookups go through an index phone key -> entity ids, rebuilt when the data changes
    (``reindex``), so a lookup is a few dict reads however large the file.
    """

    def __init__(self, data: Dataset, region: str = DEFAULT_REGION) -> None:
        self.data = data
        self.region = region
        self._index: dict[str, Findings] = {}
        self.reindex()

    def reindex(self) -> None:
        keys: set[str] = set()
        for section in (self.data.leads, self.data.contacts, self.data.companies):
            for rec in section.values():
                for p in rec.phones:
                    key = try_normalize(p, self.region)
                    if key:
                        keys.add(key)
        self._index = {k: findings_for(self.data, k, self.region) for k in keys}

    def find(self, phone: str) -> Findings:
        return self._index.get(phone) or Findings(phone=phone)

    @property
    def dataset(self) -> Dataset:
        return self.data

    @property
    def rest(self) -> None:
        return None

    async def lookup(self, phone: str) -> Findings:
        return self.find(phone)

    async def changed(self, kind: str, entity_id: str, deleted: bool) -> set[str]:
        """The data was edited in place (the demo's status panel): index it again and return the
        entity's numbers as they are now."""
        self.reindex()
        return entity_phones(self.data, kind, entity_id, self.region)

    def health(self) -> dict[str, object]:
        return {"ok": True, "source": "datafile", "reason": None, "file": self.data.source}

    async def close(self) -> None:
        return None


def _lead(data: Dataset, x: LeadRec) -> Lead:
    return Lead(
        id=x.id,
        title=x.title,
        assigned_by=x.assigned_by,
        status=x.status,
        company_id=x.company,
        contact_id=x.contact,
        assigned_name=data.user_name(x.assigned_by),
    )


def _contact(data: Dataset, x: ContactRec) -> Contact:
    return Contact(
        id=x.id,
        name=x.name,
        assigned_by=x.assigned_by,
        company_ids=tuple(data.contact_companies(x.id)),
        assigned_name=data.user_name(x.assigned_by),
    )


def _company(data: Dataset, x: CompanyRec) -> Company:
    return Company(
        id=x.id,
        title=x.title,
        assigned_by=x.assigned_by,
        status=x.status,
        assigned_name=data.user_name(x.assigned_by),
    )


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
