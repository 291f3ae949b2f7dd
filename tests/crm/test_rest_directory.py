"""The REST directory finds what the data-file directory finds, in two portal round trips."""

from __future__ import annotations

import pytest

from gateway.crm.build import source_directory
from gateway.crm.cache import CachedDirectory
from gateway.crm.datafile import findings_for
from gateway.crm.dataset import Dataset
from gateway.crm.rest import BitrixDirectory
from gateway.tools.fakeportal import FakePortal
from rules import decide, load_policy, normalize
from rules.phones import try_normalize
from tests.crm.conftest import portal_settings


def demo_phones(data: Dataset) -> list[str]:
    keys = {
        try_normalize(p)
        for section in (data.leads, data.contacts, data.companies)
        for rec in section.values()
        for p in rec.phones
    }
    return sorted(k for k in keys if k)


async def test_rest_findings_equal_datafile_findings_for_every_demo_phone(
    fake_portal: FakePortal, demo_data: Dataset
) -> None:
    directory = source_directory(portal_settings(fake_portal))
    assert isinstance(directory, BitrixDirectory)
    try:
        phones = demo_phones(demo_data)
        assert len(phones) > 20
        for phone in [*phones, "+79990000000", "+4915112345678"]:
            assert await directory.lookup(phone) == findings_for(demo_data, phone), phone
    finally:
        await directory.close()


async def test_a_cold_lookup_is_two_round_trips(fake_portal: FakePortal) -> None:
    directory = source_directory(portal_settings(fake_portal))
    try:
        # A contact with two companies, both with contacts and managers of their own.
        findings = await directory.lookup("+79031234567")
        assert [c.id for c in findings.linked_companies] == ["11", "12"]
        assert fake_portal.requests == {"batch": 2}
    finally:
        await directory.close()


@pytest.mark.parametrize(
    ("typed", "caller", "colour", "rule"),
    [
        ("+7 (495) 123-45-67", "7", "red", "foreign-client-in-work"),  # Ромашка, IN_WORK, user 6
        ("8 495 123 45 67", "6", "none", None),  # own company: lead 43 does not count alone
        ("89160001122", "9", "red", "foreign-client-in-work"),  # contact of Ромашка
        ("+7 917 555 66 77", "7", "yellow", "known-contact"),  # contact of a PENDING company
        ("+7-903-765-43-21", "7", "yellow", "known-contact"),  # contact + lead
        ("8 (916) 123-45-67", "6", "blue", "lead-only"),
        ("+7 812 555 01 02", "7", "none", None),  # DECLINED company only
        ("+7 999 000 00 00", "7", "none", None),  # nobody
    ],
)
async def test_every_default_rule_through_rest_data(
    rest_directory: CachedDirectory,
    demo_data: Dataset,
    typed: str,
    caller: str,
    colour: str,
    rule: str | None,
) -> None:
    policy = load_policy()
    phone = normalize(typed)
    decision = decide(await rest_directory.lookup(phone), caller, policy)
    assert (decision.colour, decision.rule) == (colour, rule)
    assert decision == decide(findings_for(demo_data, phone), caller, policy)


async def test_a_status_change_on_the_portal_shows_in_a_fresh_lookup(
    fake_portal: FakePortal,
) -> None:
    directory = source_directory(portal_settings(fake_portal))
    try:
        assert (await directory.lookup("+78125550102")).companies[0].status == "DECLINED"
        fake_portal.set_company_status(14, "IN_WORK", by_user=3)
        assert (await directory.lookup("+78125550102")).companies[0].status == "IN_WORK"
        fake_portal.set_company_status(14, None, by_user=3)
        assert (await directory.lookup("+78125550102")).companies[0].status is None
    finally:
        await directory.close()


async def test_a_status_item_added_after_the_map_was_cached_is_learned(
    fake_portal: FakePortal,
) -> None:
    directory = source_directory(portal_settings(fake_portal))
    try:
        await directory.lookup("+78125550102")
        field = fake_portal.store.userfields_by_name()[fake_portal.status_field]
        fake_portal.store.update_userfield(
            field["ID"], {"LIST": [{"VALUE": "VIP", "XML_ID": "VIP"}]}
        )
        fake_portal.set_company_status(14, "VIP")
        assert (await directory.lookup("+78125550102")).companies[0].status == "VIP"
    finally:
        await directory.close()


async def test_without_the_status_field_companies_have_no_status(demo_data: Dataset) -> None:
    async with FakePortal(demo_data, with_status_field=False) as portal:
        directory = source_directory(portal_settings(portal))
        try:
            findings = await directory.lookup("+74951234567")
            assert [c.status for c in findings.companies] == [None]
            assert findings.companies[0].assigned_name == "Анна Смирнова"
        finally:
            await directory.close()
