"""What a directory lookup found for one phone number, and what the rules decided.

All ids are strings, as Bitrix24 returns them (``"2909"``); user ids are the portal's user ids.
Values are frozen: the pipeline passes them forward and never mutates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cache


@dataclass(frozen=True, slots=True)
class Lead:
    id: str
    title: str
    assigned_by: str
    status: str | None = None
    company_id: str | None = None
    contact_id: str | None = None
    assigned_name: str | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    name: str
    assigned_by: str
    company_ids: tuple[str, ...] = ()
    assigned_name: str | None = None


@dataclass(frozen=True, slots=True)
class Company:
    id: str
    title: str
    assigned_by: str
    status: str | None = None
    assigned_name: str | None = None


@dataclass(frozen=True, slots=True)
class Findings:
    """Everything the lookups found for one number.

    ``companies`` are the companies whose own phone matches; ``linked_companies`` are the companies
    reached through a matched contact or through a matched lead's linked company (a company may be
    in both). Each tuple is ordered by id and holds an entity once.
    """

    phone: str
    leads: tuple[Lead, ...] = ()
    contacts: tuple[Contact, ...] = ()
    companies: tuple[Company, ...] = ()
    linked_companies: tuple[Company, ...] = ()

    @property
    def all_companies(self) -> tuple[Company, ...]:
        """K of the rules: direct companies, then linked ones not already listed."""
        seen = {c.id for c in self.companies}
        return self.companies + tuple(c for c in self.linked_companies if c.id not in seen)

    @property
    def empty(self) -> bool:
        return not (self.leads or self.contacts or self.companies)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view (for ``explain --json`` and logs)."""
        return {
            "phone": self.phone,
            "leads": [_as_dict(x) for x in self.leads],
            "contacts": [_as_dict(x) for x in self.contacts],
            "companies": [_as_dict(x) for x in self.companies],
            "linked_companies": [_as_dict(x) for x in self.linked_companies],
        }


@dataclass(frozen=True, slots=True)
class Owner:
    """The responsible manager of what the rule matched."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Subject:
    """What the rule matched: its kind (company, contact, lead), id, title and, for a company,
    its status code with the status's names (Russian, English)."""

    kind: str
    id: str
    title: str
    status: str | None = None
    status_name: str = ""
    status_name_en: str = ""

    def status_in(self, lang: str) -> str:
        return (self.status_name_en if lang == "en" else "") or self.status_name


@dataclass(frozen=True, slots=True)
class Decision:
    """The colour for one call popup and why.

    ``colour`` is a colour name from the rules file (``none`` keeps the popup's own look, and then
    ``background`` is None); ``rule`` is the id of the rule that matched, None when none did.
    """

    colour: str
    background: str | None
    rule: str | None
    reason: str
    entity: str | None = field(default=None)
    reason_en: str = ""  # empty: the reason has one text for every language
    owner: Owner | None = None
    subject: Subject | None = None

    def text(self, lang: str) -> str:
        """The reason in ``lang`` ("ru" or "en"), one language only."""
        return (self.reason_en if lang == "en" else "") or self.reason

    def to_dict(self) -> dict[str, object]:
        return {
            "colour": self.colour,
            "background": self.background,
            "rule": self.rule,
            "reason": self.reason,
            "reason_en": self.reason_en or self.reason,
            "entity": self.entity,
            "owner": _as_dict(self.owner) if self.owner else None,
            "subject": _as_dict(self.subject) if self.subject else None,
        }


def _as_dict(value: Lead | Contact | Company | Owner | Subject) -> dict[str, object]:
    out: dict[str, object] = {}
    kind: type = type(value)
    for name in _names(kind):
        item = getattr(value, name)
        out[name] = list(item) if isinstance(item, tuple) else item
    return out


@cache
def _names(kind: type) -> tuple[str, ...]:
    # dataclasses.fields() builds its answer anew each time: it was half of a decision's
    # to_dict, which every POST /api/calls answer carries.
    return tuple(f.name for f in fields(kind))
