"""The data file (design.md §3.3): its records, and reading it with errors that name the key.

The embedded directory (:mod:`gateway.crm.datafile`), the demo and the fake Bitrix24 portal read
the same format. Phones are kept as people typed them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.crm import DirectoryError

SECTIONS = ("users", "departments", "companies", "contacts", "leads")


class DataFileError(DirectoryError, ValueError):
    """A data file that cannot be used; ``str(err)`` names the file and the path inside it."""


@dataclass(slots=True)
class UserRec:
    id: str
    name: str
    departments: list[str] = field(default_factory=list)
    admin: bool = False


@dataclass(slots=True)
class DepartmentRec:
    id: str
    name: str
    parent: str | None = None
    head: str | None = None


@dataclass(slots=True)
class CompanyRec:
    id: str
    title: str
    assigned_by: str
    status: str | None = None
    phones: list[str] = field(default_factory=list)
    contacts: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ContactRec:
    id: str
    name: str
    assigned_by: str
    phones: list[str] = field(default_factory=list)
    companies: list[str] = field(default_factory=list)


@dataclass(slots=True)
class LeadRec:
    id: str
    title: str
    assigned_by: str
    status: str | None = None
    phones: list[str] = field(default_factory=list)
    company: str | None = None
    contact: str | None = None


@dataclass(slots=True)
class Dataset:
    """The parsed data file: records by id (string ids, as Bitrix24 has them)."""

    users: dict[str, UserRec] = field(default_factory=dict)
    departments: dict[str, DepartmentRec] = field(default_factory=dict)
    companies: dict[str, CompanyRec] = field(default_factory=dict)
    contacts: dict[str, ContactRec] = field(default_factory=dict)
    leads: dict[str, LeadRec] = field(default_factory=dict)
    source: str = "<data>"

    def user_name(self, user_id: str) -> str | None:
        user = self.users.get(user_id)
        return user.name if user else None

    def contact_companies(self, contact_id: str) -> list[str]:
        """Companies linked to a contact, from either side of the link."""
        linked = set(self.contacts[contact_id].companies) if contact_id in self.contacts else set()
        linked.update(c.id for c in self.companies.values() if contact_id in c.contacts)
        return sorted((c for c in linked if c in self.companies), key=id_order)

    def unknown_statuses(self, codes: tuple[str, ...]) -> list[str]:
        """Company ids whose status is not in ``codes`` (the rules file's list)."""
        return [c.id for c in self.companies.values() if c.status and c.status not in codes]


def demo_path() -> Path:
    return Path(str(resources.files("gateway.crm").joinpath("demo.json")))


def load_dataset(path: str | Path | None = None) -> Dataset:
    """Read a data file; ``None`` reads the bundled demo data."""
    file = Path(path) if path is not None else demo_path()
    try:
        raw = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFileError(f"{file}: data file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataFileError(f"{file}: cannot read data file ({err})") from None
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as err:
        raise DataFileError(f"{file}: not valid JSON: {err}") from None
    return parse_dataset(doc, source=str(file))


def parse_dataset(doc: Any, source: str = "<data>") -> Dataset:
    return _Parser(source).dataset(doc)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> DataFileError:
        return DataFileError(f"{self.source}: {where}: {message}")

    def dataset(self, doc: Any) -> Dataset:
        if not isinstance(doc, dict):
            raise self.fail("top level", "must be a JSON object with " + ", ".join(SECTIONS))
        for key in doc:
            if key not in SECTIONS:
                raise self.fail(key, f"unknown section (known: {', '.join(SECTIONS)})")
        data = Dataset(source=self.source)
        for section in SECTIONS:
            items = doc.get(section, [])
            if not isinstance(items, list):
                raise self.fail(section, "must be a list")
            target: dict[str, Any] = getattr(data, section)
            for i, item in enumerate(items):
                where = f"{section}[{i}]"
                if not isinstance(item, dict):
                    raise self.fail(where, "must be an object")
                rec = getattr(self, section)(item, where)
                if rec.id in target:
                    raise self.fail(f"{where}.id", f"duplicate id {rec.id}")
                target[rec.id] = rec
        self.check_links(data)
        return data

    def keys(
        self, item: dict[str, Any], where: str, required: set[str], optional: set[str]
    ) -> None:
        for key in item:
            if key not in required | optional:
                raise self.fail(f"{where}.{key}", "unknown key")
        for key in sorted(required - set(item)):
            raise self.fail(f"{where}.{key}", "missing")

    def ident(self, value: Any, where: str, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.fail(where, "must be an id (a number or a string of digits)")
        text = str(value).strip()
        if not text.isdigit() or text.startswith("0"):
            raise self.fail(where, f"{value!r} is not a positive id")
        return text

    def req_id(self, item: dict[str, Any], key: str, where: str) -> str:
        value = self.ident(item.get(key), f"{where}.{key}")
        assert value is not None
        return value

    def opt_id(self, item: dict[str, Any], key: str, where: str) -> str | None:
        return self.ident(item.get(key), f"{where}.{key}", optional=True)

    def ids(self, item: dict[str, Any], key: str, where: str) -> list[str]:
        value = item.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"{where}.{key}", "must be a list of ids")
        return [self.req_id({"v": v}, "v", f"{where}.{key}[{i}]") for i, v in enumerate(value)]

    def text(self, item: dict[str, Any], key: str, where: str) -> str:
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}.{key}", "must be a non-empty string")
        return value

    def opt_text(self, item: dict[str, Any], key: str, where: str) -> str | None:
        value = item.get(key)
        if value is None:
            return None
        return self.text(item, key, where)

    def phones(self, item: dict[str, Any], where: str) -> list[str]:
        value = item.get("phones", [])
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise self.fail(f"{where}.phones", "must be a list of strings")
        return list(value)

    def users(self, item: dict[str, Any], where: str) -> UserRec:
        self.keys(item, where, {"id", "name"}, {"departments", "admin"})
        admin = item.get("admin", False)
        if not isinstance(admin, bool):
            raise self.fail(f"{where}.admin", "must be true or false")
        return UserRec(
            self.req_id(item, "id", where),
            self.text(item, "name", where),
            self.ids(item, "departments", where),
            admin,
        )

    def departments(self, item: dict[str, Any], where: str) -> DepartmentRec:
        self.keys(item, where, {"id", "name"}, {"parent", "head"})
        return DepartmentRec(
            self.req_id(item, "id", where),
            self.text(item, "name", where),
            self.opt_id(item, "parent", where),
            self.opt_id(item, "head", where),
        )

    def companies(self, item: dict[str, Any], where: str) -> CompanyRec:
        self.keys(item, where, {"id", "title", "assigned_by"}, {"status", "phones", "contacts"})
        return CompanyRec(
            self.req_id(item, "id", where),
            self.text(item, "title", where),
            self.req_id(item, "assigned_by", where),
            self.opt_text(item, "status", where),
            self.phones(item, where),
            self.ids(item, "contacts", where),
        )

    def contacts(self, item: dict[str, Any], where: str) -> ContactRec:
        self.keys(item, where, {"id", "name", "assigned_by"}, {"phones", "companies"})
        return ContactRec(
            self.req_id(item, "id", where),
            self.text(item, "name", where),
            self.req_id(item, "assigned_by", where),
            self.phones(item, where),
            self.ids(item, "companies", where),
        )

    def leads(self, item: dict[str, Any], where: str) -> LeadRec:
        self.keys(
            item, where, {"id", "title", "assigned_by"}, {"status", "phones", "company", "contact"}
        )
        return LeadRec(
            self.req_id(item, "id", where),
            self.text(item, "title", where),
            self.req_id(item, "assigned_by", where),
            self.opt_text(item, "status", where),
            self.phones(item, where),
            self.opt_id(item, "company", where),
            self.opt_id(item, "contact", where),
        )

    def check_links(self, data: Dataset) -> None:
        def need(section: dict[str, Any], ident: str | None, where: str, what: str) -> None:
            if ident is not None and ident not in section:
                raise self.fail(where, f"no {what} with id {ident}")

        for i, c in enumerate(data.companies.values()):
            for j, contact in enumerate(c.contacts):
                need(data.contacts, contact, f"companies[{i}].contacts[{j}]", "contact")
        for i, p in enumerate(data.contacts.values()):
            for j, company in enumerate(p.companies):
                need(data.companies, company, f"contacts[{i}].companies[{j}]", "company")
        for i, lead in enumerate(data.leads.values()):
            need(data.companies, lead.company, f"leads[{i}].company", "company")
            need(data.contacts, lead.contact, f"leads[{i}].contact", "contact")
        for i, d in enumerate(data.departments.values()):
            need(data.departments, d.parent, f"departments[{i}].parent", "department")
        for i, u in enumerate(data.users.values()):
            for j, dep in enumerate(u.departments):
                need(data.departments, dep, f"users[{i}].departments[{j}]", "department")


def id_order(value: str) -> tuple[int, str]:
    return (int(value), value) if value.isdigit() else (1 << 62, value)


def rec_order(rec: LeadRec | ContactRec | CompanyRec) -> tuple[int, str]:
    return id_order(rec.id)
