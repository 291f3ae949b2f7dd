"""The data file's phone index: built in one pass, changed one entity at a time.

Each stored phone is normalised once (the costly part: phonenumbers' parser), into phone key ->
ids per kind, plus the contact <-> company links from both sides. A lookup then assembles its
Findings from a handful of records and keeps them until something they show changes. Building is
linear in the records; an entity's change touches its own keys and, for a company, those of its
contacts and leads. The build runs in a thread (:meth:`DataFileDirectory.lookup` awaits it), so
a large file does not stall the event loop.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from gateway.crm.dataset import CompanyRec, ContactRec, Dataset, LeadRec, id_order, rec_order
from rules.model import Company, Contact, Findings, Lead
from rules.phones import try_normalize

Entity = tuple[str, str]  # (kind, id)
Section = dict[str, LeadRec] | dict[str, ContactRec] | dict[str, CompanyRec]


class PhoneIndex:
    def __init__(self, data: Dataset, region: str) -> None:
        self.data = data
        self.region = region
        self._keys: dict[Entity, frozenset[str]] = {}
        self._ids: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        # Links from either side of the data file: contact -> companies, company -> contacts and
        # leads. Kept per side, so that an entity's change updates its own side only.
        self._by_company: dict[str, set[str]] = defaultdict(set)  # company -> contacts (its list)
        self._by_contact: dict[str, set[str]] = defaultdict(set)  # contact -> companies (its list)
        self._leads: dict[str, set[str]] = defaultdict(set)  # company -> leads
        self._named_by_companies: dict[str, set[str]] = defaultdict(set)  # the reverse of each
        self._named_by_contacts: dict[str, set[str]] = defaultdict(set)
        self._found: dict[str, Findings] = {}
        self._normalized: dict[str, str | None] = {}
        for kind, section in self._sections():
            for ident in section:
                self._add(kind, ident)

    def _normalize(self, phone: str) -> str | None:
        # Parsing is the cost of a build; a number typed the same way twice is parsed once.
        if phone not in self._normalized:
            if len(self._normalized) > 1_000_000:
                self._normalized.clear()
            self._normalized[phone] = try_normalize(phone, self.region)
        return self._normalized[phone]

    def _sections(self) -> list[tuple[str, Section]]:
        data = self.data
        return [("lead", data.leads), ("contact", data.contacts), ("company", data.companies)]

    def _record(self, kind: str, ident: str) -> LeadRec | ContactRec | CompanyRec | None:
        if kind == "lead":
            return self.data.leads.get(ident)
        if kind == "contact":
            return self.data.contacts.get(ident)
        return self.data.companies.get(ident)

    def _add(self, kind: str, ident: str) -> frozenset[str]:
        rec = self._record(kind, ident)
        phones = rec.phones if rec is not None else []
        if isinstance(rec, CompanyRec):
            self._by_company[ident] = set(rec.contacts)
            for contact in rec.contacts:
                self._named_by_companies[contact].add(ident)
        elif isinstance(rec, ContactRec):
            self._by_contact[ident] = set(rec.companies)
            for company in rec.companies:
                self._named_by_contacts[company].add(ident)
        elif isinstance(rec, LeadRec) and rec.company:
            self._leads[rec.company].add(ident)
        keys = frozenset(k for p in phones if (k := self._normalize(p)))
        self._keys[(kind, ident)] = keys
        for key in keys:
            self._ids[key][kind].add(ident)
        return keys

    def _remove(self, kind: str, ident: str) -> frozenset[str]:
        keys = self._keys.pop((kind, ident), frozenset())
        if kind == "company":
            for contact in self._by_company.pop(ident, ()):
                self._named_by_companies[contact].discard(ident)
        elif kind == "contact":
            for company in self._by_contact.pop(ident, ()):
                self._named_by_contacts[company].discard(ident)
        else:
            for leads in self._leads.values():  # a lead's company may have changed
                leads.discard(ident)
        for key in keys:
            self._ids[key][kind].discard(ident)
        return keys

    # -- reading -----------------------------------------------------------------------------
    def keys(self, kind: str, ident: str) -> frozenset[str]:
        return self._keys.get((kind, ident), frozenset())

    def contact_companies(self, contact: str) -> list[str]:
        linked = set(self._by_contact.get(contact, ()))
        linked |= self._named_by_companies.get(contact, set())
        return sorted((c for c in linked if c in self.data.companies), key=id_order)

    def find(self, phone: str) -> Findings:
        found = self._found.get(phone)
        if found is None:
            found = self._found[phone] = self._assemble(phone)
        return found

    def _assemble(self, phone: str) -> Findings:
        ids = self._ids.get(phone)
        if not ids:
            return Findings(phone=phone)
        data = self.data
        return assemble(
            data,
            phone,
            [data.leads[i] for i in ids.get("lead", ()) if i in data.leads],
            [data.contacts[i] for i in ids.get("contact", ()) if i in data.contacts],
            [data.companies[i] for i in ids.get("company", ()) if i in data.companies],
            self.contact_companies,
        )

    # -- changes -----------------------------------------------------------------------------
    def update(self, kind: str, ident: str) -> set[str]:
        """The entity changed in place (or went): index it again; the phone keys whose findings
        may differ (its old and new numbers; for a company its contacts' and leads')."""
        before = self.company_people(ident) if kind == "company" else set()
        touched = set(self._remove(kind, ident)) | self._add(kind, ident)
        if kind == "company":
            touched |= before | self.company_people(ident)
        elif kind == "contact":
            self._found.clear()  # its links may have changed: other numbers show it too
        elif kind == "lead":
            self._found.clear()
        for key in touched:
            self._found.pop(key, None)
        return touched

    def company_people(self, company: str) -> set[str]:
        """The phone keys of a company's contacts and leads (they reach it through links)."""
        contacts = set(self._by_company.get(company, ()))
        contacts |= self._named_by_contacts.get(company, set())
        keys = {k for c in contacts for k in self.keys("contact", c)}
        return keys | {k for x in self._leads.get(company, ()) for k in self.keys("lead", x)}


def assemble(
    data: Dataset,
    phone: str,
    leads: list[LeadRec],
    contacts: list[ContactRec],
    companies: list[CompanyRec],
    contact_companies: Callable[[str], list[str]],
) -> Findings:
    """The Findings of ``phone`` from the records that matched it."""
    linked: set[str] = set()
    for contact in contacts:
        linked.update(contact_companies(contact.id))
    linked.update(x.company for x in leads if x.company and x.company in data.companies)
    return Findings(
        phone=phone,
        leads=tuple(lead_of(data, x) for x in sorted(leads, key=rec_order)),
        contacts=tuple(
            contact_of(data, x, contact_companies(x.id)) for x in sorted(contacts, key=rec_order)
        ),
        companies=tuple(company_of(data, x) for x in sorted(companies, key=rec_order)),
        linked_companies=tuple(
            company_of(data, data.companies[i]) for i in sorted(linked, key=id_order)
        ),
    )


def lead_of(data: Dataset, x: LeadRec) -> Lead:
    return Lead(
        id=x.id,
        title=x.title,
        assigned_by=x.assigned_by,
        status=x.status,
        company_id=x.company,
        contact_id=x.contact,
        assigned_name=data.user_name(x.assigned_by),
    )


def contact_of(data: Dataset, x: ContactRec, companies: list[str]) -> Contact:
    return Contact(
        id=x.id,
        name=x.name,
        assigned_by=x.assigned_by,
        company_ids=tuple(companies),
        assigned_name=data.user_name(x.assigned_by),
    )


def company_of(data: Dataset, x: CompanyRec) -> Company:
    return Company(
        id=x.id,
        title=x.title,
        assigned_by=x.assigned_by,
        status=x.status,
        assigned_name=data.user_name(x.assigned_by),
    )
