"""The embedded directory: the data file format, validation, and what matches a number."""

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.crm.datafile import DataFileDirectory, findings_for
from gateway.crm.dataset import DataFileError, load_dataset, parse_dataset
from rules import decide, load_policy, normalize

SAMPLE: dict[str, Any] = {
    "users": [{"id": 7, "name": "Анна Смирнова", "departments": [2], "admin": False}],
    "departments": [
        {"id": 1, "name": "Компания"},
        {"id": 2, "name": "Продажи", "parent": 1, "head": 5},
    ],
    "companies": [
        {
            "id": 10,
            "title": "ООО Ромашка",
            "assigned_by": 7,
            "status": "IN_WORK",
            "phones": ["+7 (495) 123-45-67"],
            "contacts": [20],
        },
        {"id": 11, "title": "АО Вектор", "assigned_by": 8, "status": None, "phones": []},
    ],
    "contacts": [
        {
            "id": 20,
            "name": "Пётр Иванов",
            "assigned_by": 7,
            "phones": ["8 916 000-11-22", "not a phone"],
            "companies": [11],
        }
    ],
    "leads": [
        {
            "id": 30,
            "title": "Заявка с сайта",
            "assigned_by": 9,
            "status": "NEW",
            "phones": ["+79160001122"],
            "company": None,
            "contact": None,
        },
        {
            "id": 31,
            "title": "Конвертирован",
            "assigned_by": 9,
            "phones": ["+7 903 111-22-33"],
            "company": 11,
        },
    ],
}


def test_design_sample_parses_with_string_ids() -> None:
    data = parse_dataset(SAMPLE)
    assert set(data.companies) == {"10", "11"}
    assert data.users["7"].departments == ["2"]
    assert data.departments["1"].parent is None
    assert data.departments["2"].head == "5"
    assert data.user_name("7") == "Анна Смирнова"
    assert data.user_name("99") is None


def test_contact_company_links_from_both_sides() -> None:
    data = parse_dataset(SAMPLE)
    assert data.contact_companies("20") == ["10", "11"]


def test_findings_for_a_number_typed_differently() -> None:
    data = parse_dataset(SAMPLE)
    found = findings_for(data, normalize("8 (916) 000 11 22"))
    assert [c.id for c in found.contacts] == ["20"]
    assert [x.id for x in found.leads] == ["30"]
    assert found.companies == ()
    assert [c.id for c in found.linked_companies] == ["10", "11"]
    assert found.contacts[0].company_ids == ("10", "11")
    assert found.contacts[0].assigned_name == "Анна Смирнова"


def test_lead_linked_company_is_reached() -> None:
    data = parse_dataset(SAMPLE)
    found = findings_for(data, normalize("+7 903 111 22 33"))
    assert [x.company_id for x in found.leads] == ["11"]
    assert [c.id for c in found.linked_companies] == ["11"]


async def test_directory_lookup_and_reindex() -> None:
    data = parse_dataset(SAMPLE)
    directory = DataFileDirectory(data)
    key = normalize("+7 495 123 45 67")
    assert [c.id for c in (await directory.lookup(key)).companies] == ["10"]
    assert (await directory.lookup("+70000000000")).empty
    data.companies["10"].phones = []
    directory.reindex()
    assert (await directory.lookup(key)).empty
    assert directory.health()["ok"] is True
    await directory.close()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(deals=[]), r"deals: unknown section"),
        (lambda d: d["companies"][0].pop("title"), r"companies\[0\]\.title: missing"),
        (lambda d: d["companies"][0].update(colour="red"), r"companies\[0\]\.colour: unknown key"),
        (
            lambda d: d["contacts"][0].update(companies=[99]),
            r"contacts\[0\]\.companies\[0\]: no company with id 99",
        ),
        (lambda d: d["leads"][0].update(contact=5), r"leads\[0\]\.contact: no contact with id 5"),
        (lambda d: d["companies"][1].update(id=10), r"companies\[1\]\.id: duplicate id 10"),
        (
            lambda d: d["companies"][0].update(assigned_by="x"),
            r"companies\[0\]\.assigned_by: 'x' is not a positive id",
        ),
        (
            lambda d: d["companies"][0].update(phones="+7 495"),
            r"companies\[0\]\.phones: must be a list of strings",
        ),
        (lambda d: d["users"][0].update(admin="yes"), r"users\[0\]\.admin: must be true or false"),
        (
            lambda d: d["departments"][1].update(parent=42),
            r"departments\[1\]\.parent: no department with id 42",
        ),
        (lambda d: d.update(users={}), r"users: must be a list"),
    ],
)
def test_bad_data_is_rejected_naming_the_path(mutate: Any, message: str) -> None:
    doc = json.loads(json.dumps(SAMPLE))
    mutate(doc)
    with pytest.raises(DataFileError, match=r"^f\.json: " + message):
        parse_dataset(doc, source="f.json")


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="data file not found"):
        load_dataset(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"bad\.json: not valid JSON"):
        load_dataset(bad)
    top = tmp_path / "top.json"
    top.write_text("[]", encoding="utf-8")
    with pytest.raises(DataFileError, match="top level: must be a JSON object"):
        load_dataset(top)


def test_demo_data_reaches_every_colour() -> None:
    data = load_dataset()
    assert len(data.companies) + len(data.contacts) + len(data.leads) >= 25
    assert data.unknown_statuses(load_policy().status_codes) == []
    directory = DataFileDirectory(data)
    policy = load_policy()
    colours: set[str] = set()
    phones = {
        p
        for rec in [*data.companies.values(), *data.contacts.values(), *data.leads.values()]
        for p in rec.phones
    }
    for phone in phones:
        for caller in data.users:
            colours.add(decide(directory.find(normalize(phone)), caller, policy).colour)
    colours.add(decide(directory.find(normalize("+7 999 000 00 00")), "6", policy).colour)
    assert colours == {"red", "yellow", "blue", "none"}
