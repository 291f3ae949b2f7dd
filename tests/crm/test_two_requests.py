"""Two HTTP requests per cold number found, one for no match: over ``crm.item.*`` and over the
classic methods (a portal without ``crm.item.*``), against the fake portal's faithful batch."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.crm.build import source_directory
from gateway.crm.datafile import findings_for
from gateway.crm.dataset import Dataset
from gateway.crm.rest import BitrixDirectory
from gateway.tools.fakeportal import FakePortal
from tests.crm.conftest import portal_settings
from tests.crm.test_rest_directory import demo_phones


@pytest.fixture(params=[True, False], ids=["crm.item", "classic"])
async def portal(request: pytest.FixtureRequest, demo_data: Dataset) -> AsyncIterator[FakePortal]:
    async with FakePortal(demo_data) as fake:
        fake.item_api = request.param
        yield fake


@pytest.fixture
async def directory(portal: FakePortal) -> AsyncIterator[BitrixDirectory]:
    found = source_directory(portal_settings(portal))
    assert isinstance(found, BitrixDirectory)
    yield found
    await found.close()


async def test_every_demo_number_costs_two_requests_and_equals_the_data_file(
    portal: FakePortal, directory: BitrixDirectory, demo_data: Dataset
) -> None:
    if not portal.item_api:
        await directory.lookup("+74951234567")  # learn that crm.item.* is missing (once)
        assert directory.dialect.name == "classic"
    for phone in demo_phones(demo_data):
        portal.reset_counters()
        assert await directory.lookup(phone) == findings_for(demo_data, phone), phone
        assert portal.requests == {"batch": 2}, phone
    methods = set(portal.faults.commands)
    assert ("crm.item.list" in methods) is portal.item_api
    assert ("crm.company.list" in methods) is not portal.item_api


async def test_a_number_with_no_match_costs_one_request(
    portal: FakePortal, directory: BitrixDirectory
) -> None:
    for phone in ("+79990000000", "+4915112345678"):
        portal.reset_counters()
        assert (await directory.lookup(phone)).empty
        assert portal.requests == {"batch": 1}


async def test_the_fallback_to_classic_methods_costs_one_request_once(
    demo_data: Dataset,
) -> None:
    async with FakePortal(demo_data) as portal:
        portal.item_api = False
        directory = source_directory(portal_settings(portal))
        assert isinstance(directory, BitrixDirectory)
        try:
            assert (await directory.lookup("+74951234567")).companies[0].id == "10"
            assert portal.requests == {"batch": 3}  # the details batch again, classic
            # the company's number, its contact's and its lead's
            assert await directory.changed("company", "10", False) == {
                "+74951234567",
                "+79160001122",
            }
        finally:
            await directory.close()


async def test_a_contact_with_many_companies_and_managers(
    portal: FakePortal, directory: BitrixDirectory
) -> None:
    contact = portal.add(
        "contact",
        {"NAME": "Много", "ASSIGNED_BY_ID": "5", "PHONE": [{"VALUE": "+7 999 100-20-30"}]},
    )
    companies = [
        portal.add("company", {"TITLE": f"Фирма {i}", "ASSIGNED_BY_ID": str(i + 2)})
        for i in range(4)
    ]
    portal.update("contact", contact, {"COMPANY_IDS": companies})
    lead = portal.add(
        "lead",
        {
            "TITLE": "Заявка",
            "ASSIGNED_BY_ID": "9",
            "COMPANY_ID": companies[0],
            "PHONE": [{"VALUE": "89991002030"}],
        },
    )
    await directory.lookup("+74951234567")  # settle the dialect
    portal.reset_counters()
    found = await directory.lookup("+79991002030")
    assert [c.id for c in found.contacts] == [contact]
    assert [le.id for le in found.leads] == [lead]
    assert [c.id for c in found.linked_companies] == companies
    assert all(c.assigned_name for c in found.linked_companies)
    assert found.contacts[0].assigned_name
    assert found.leads[0].assigned_name
    # crm.item: a contact's companyIds is one reference; classic: the first 3 companies of a
    # contact come by reference, the rest in a further batch.
    assert portal.requests == {"batch": 2 if portal.item_api else 3}
