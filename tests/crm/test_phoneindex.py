"""The data file's phone index: the same findings as a plain scan, after changes too, built off
the event loop."""

from __future__ import annotations

import asyncio

from gateway.crm.datafile import DataFileDirectory, findings_for
from gateway.crm.dataset import Dataset, load_dataset, parse_dataset
from tests.crm.test_rest_directory import demo_phones
from tests.timing import timeout


def big_data(n: int) -> Dataset:
    """``n`` companies, each with a contact (linked from the contact's side) and a lead."""
    doc: dict[str, list[dict[str, object]]] = {
        "users": [{"id": 1, "name": "Анна"}],
        "departments": [],
        "companies": [],
        "contacts": [],
        "leads": [],
    }
    for i in range(n):
        doc["companies"].append(
            {
                "id": 10 + i,
                "title": f"c{i}",
                "assigned_by": 1,
                "status": "IN_WORK",
                "phones": [f"+7 901 {i:07d}"],
            }
        )
        doc["contacts"].append(
            {
                "id": 10 + i,
                "name": f"p{i}",
                "assigned_by": 1,
                "phones": [f"8 902 {i:07d}"],
                "companies": [10 + i],
            }
        )
        doc["leads"].append(
            {
                "id": 10 + i,
                "title": f"l{i}",
                "assigned_by": 1,
                "phones": [f"+7 903 {i:07d}"],
                "company": 10 + i,
            }
        )
    return parse_dataset(doc)


async def test_the_index_finds_what_a_scan_finds_also_after_changes() -> None:
    data = load_dataset()
    directory = DataFileDirectory(data)
    phones = demo_phones(data)
    for phone in phones:
        assert await directory.lookup(phone) == findings_for(data, phone), phone
    # The demo's status panel: a company's status changes in place.
    data.companies["10"].status = "DECLINED"
    touched = await directory.changed("company", "10", False)
    assert {"+74951234567", "+79160001122"} <= touched  # its own number and its contact's
    data.contacts["20"].phones = ["+7 999 000-77-66"]
    assert await directory.changed("contact", "20", False) == {"+79160001122", "+79990007766"}
    data.leads.pop("43")
    await directory.changed("lead", "43", True)
    for phone in [*phones, "+79990007766"]:
        assert await directory.lookup(phone) == findings_for(data, phone), phone


async def test_a_large_file_is_indexed_off_the_event_loop() -> None:
    directory = DataFileDirectory(big_data(3000))
    ticks = 0
    loading = asyncio.ensure_future(directory.load())
    seen_loading = False
    while not loading.done():  # the loop keeps running other work meanwhile
        ticks += 1
        await asyncio.wait({loading}, timeout=0.001)
        seen_loading = seen_loading or directory.health()["loading"] is True
    await asyncio.wait_for(loading, timeout())
    assert ticks > 10
    assert seen_loading
    assert directory.health()["indexed"] is True
    found = await directory.lookup("+79020000042")
    assert [c.id for c in found.linked_companies] == ["52"]
