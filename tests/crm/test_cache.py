"""The cache in front of the REST directory: single-flight, warm hits, negative entries,
invalidation and the size bound, counted in the fake portal's requests."""

from __future__ import annotations

import asyncio

import pytest

from gateway.crm.build import build_directory, source_directory
from gateway.crm.cache import CachedDirectory, decode, encode
from gateway.crm.client import BitrixError
from gateway.crm.datafile import findings_for
from gateway.crm.dataset import Dataset
from gateway.tools.fakeportal import FakePortal
from tests.crm.conftest import portal_settings
from tests.timing import timeout

ROMASHKA = "+74951234567"  # company 10 and lead 43
CONTACT_22 = "+79031234567"  # contact 22, linked to companies 11 and 12
COLD = {"batch": 2}


async def test_a_hundred_concurrent_lookups_cost_one_lookup(
    rest_directory: CachedDirectory, fake_portal: FakePortal, demo_data: Dataset
) -> None:
    fake_portal.set_latency(0.05)  # keep the first lookup in flight while the others arrive
    results = await asyncio.gather(*(rest_directory.lookup(ROMASHKA) for _ in range(100)))
    assert fake_portal.requests == COLD
    assert all(r == findings_for(demo_data, ROMASHKA) for r in results)


async def test_a_warm_cache_costs_no_request(
    rest_directory: CachedDirectory, fake_portal: FakePortal
) -> None:
    first = await rest_directory.lookup(ROMASHKA)
    fake_portal.reset_counters()
    for _ in range(10):
        assert await rest_directory.lookup(ROMASHKA) == first
    assert fake_portal.total_requests == 0


async def test_a_number_with_no_match_is_cached_too(
    rest_directory: CachedDirectory, fake_portal: FakePortal
) -> None:
    assert (await rest_directory.lookup("+79990000000")).empty
    assert fake_portal.requests == {"batch": 1}
    assert (await rest_directory.lookup("+79990000000")).empty
    assert fake_portal.requests == {"batch": 1}


async def test_negative_entries_live_for_negative_ttl(fake_portal: FakePortal) -> None:
    directory = build_directory(portal_settings(fake_portal, negative_ttl=0.0))
    try:
        await directory.lookup("+79990000000")
        await directory.lookup("+79990000000")
        assert fake_portal.requests == {"batch": 2}
    finally:
        await directory.close()


async def test_invalidating_a_number_makes_the_next_lookup_ask_again(
    rest_directory: CachedDirectory, fake_portal: FakePortal
) -> None:
    await rest_directory.lookup(ROMASHKA)
    fake_portal.set_company_status(10, "DECLINED", by_user=4)
    assert (await rest_directory.lookup(ROMASHKA)).companies[0].status == "IN_WORK"  # cached
    await rest_directory.invalidate_phone(ROMASHKA)
    assert (await rest_directory.lookup(ROMASHKA)).companies[0].status == "DECLINED"


async def test_invalidating_a_company_drops_every_number_it_appears_in(
    rest_directory: CachedDirectory, fake_portal: FakePortal
) -> None:
    for phone in (ROMASHKA, "+79160001122", CONTACT_22):  # 10 direct, 10 linked, 11/12 linked
        await rest_directory.lookup(phone)
    assert await rest_directory.phones_for("company", 10) == {ROMASHKA, "+79160001122"}
    fake_portal.reset_counters()
    assert await rest_directory.invalidate_entity("company", "10") == {ROMASHKA, "+79160001122"}
    assert await rest_directory.phones_for("company", 10) == set()
    await rest_directory.lookup(CONTACT_22)
    assert fake_portal.total_requests == 0  # untouched by the invalidation
    await rest_directory.lookup("+79160001122")
    assert fake_portal.requests == COLD


async def test_a_lookup_in_flight_during_an_invalidation_is_not_stored(
    rest_directory: CachedDirectory, fake_portal: FakePortal
) -> None:
    fake_portal.set_latency(0.05)
    pending = asyncio.ensure_future(rest_directory.lookup(ROMASHKA))
    await fake_portal.faults.requests_seen(1, timeout())
    await rest_directory.invalidate_phone(ROMASHKA)
    await pending
    fake_portal.reset_counters()
    await rest_directory.lookup(ROMASHKA)
    assert fake_portal.requests == COLD


async def test_the_cache_keeps_at_most_cache_size_numbers(fake_portal: FakePortal) -> None:
    directory = build_directory(portal_settings(fake_portal, cache_size=2))
    try:
        for phone in (ROMASHKA, "+79160001122", CONTACT_22):
            await directory.lookup(phone)
        fake_portal.reset_counters()
        await directory.lookup(CONTACT_22)
        await directory.lookup("+79160001122")
        assert fake_portal.total_requests == 0
        await directory.lookup(ROMASHKA)  # the least recently used, evicted
        assert fake_portal.requests == COLD
    finally:
        await directory.close()


async def test_a_caller_that_gives_up_does_not_cancel_the_lookup(
    rest_directory: CachedDirectory, fake_portal: FakePortal
) -> None:
    fake_portal.set_latency(0.05)
    impatient = asyncio.ensure_future(rest_directory.lookup(ROMASHKA))
    await fake_portal.faults.requests_seen(1, timeout())
    impatient.cancel()
    patient = await asyncio.wait_for(rest_directory.lookup(ROMASHKA), timeout())
    assert patient.companies[0].id == "10"
    assert fake_portal.requests == COLD


async def test_failures_are_not_cached(
    rest_directory: CachedDirectory, fake_portal: FakePortal
) -> None:
    fake_portal.fail("crm.duplicate.findbycomm", 500, "INTERNAL_SERVER_ERROR", "boom", times=6)
    for _ in range(2):
        with pytest.raises(BitrixError, match="INTERNAL_SERVER_ERROR"):
            await rest_directory.lookup(ROMASHKA)
    assert (await rest_directory.lookup(ROMASHKA)).companies[0].id == "10"


def test_findings_survive_the_cache_encoding(demo_data: Dataset) -> None:
    findings = findings_for(demo_data, CONTACT_22)
    assert decode(encode(findings)) == findings


async def test_health_reports_the_source_and_the_cache(
    rest_directory: CachedDirectory, fake_portal: FakePortal
) -> None:
    await rest_directory.lookup(ROMASHKA)
    health = rest_directory.health()
    assert health["ok"] is True
    assert health["source"] == "bitrix24"
    assert health["cached"] == 1
    assert fake_portal.code not in str(health)


async def test_the_data_file_directory_sits_behind_the_same_cache(demo_data: Dataset) -> None:
    from gateway.run.config import Settings

    directory = build_directory(Settings(secret="s" * 32))
    try:
        assert await directory.lookup(ROMASHKA) == findings_for(demo_data, ROMASHKA)
        assert directory.health()["source"] == "datafile"
        assert source_directory(Settings(secret="s" * 32)).health()["ok"] is True
    finally:
        await directory.close()


async def test_invalidations_leave_no_state_behind_per_number() -> None:
    # CRM events invalidate numbers for as long as the gateway runs: what the cache remembers
    # about them must stay bounded by what it caches, not grow with every number ever dropped.
    from gateway.run.config import Settings

    directory = build_directory(Settings(secret="s" * 32, cache_size=10))
    assert isinstance(directory, CachedDirectory)
    try:
        for n in range(2000):
            await directory.invalidate_phone(f"+7495{n:07d}")
        sizes = {k: len(v) for k, v in vars(directory).items() if hasattr(v, "__len__")}
        assert max(sizes.values()) <= 10, sizes
    finally:
        await directory.close()


async def test_an_entry_this_version_cannot_read_is_a_miss(
    rest_directory: CachedDirectory, fake_portal: FakePortal, caplog: pytest.LogCaptureFixture
) -> None:
    """A shared Redis cache may hold entries of another gateway version: look the number up."""
    await rest_directory.cache.set("f:+74951234567", '{"phone": "+74951234567", "deals": []}')
    fake_portal.reset_counters()
    found = await rest_directory.lookup("+74951234567")
    assert [c.id for c in found.companies] == ["10"]
    assert fake_portal.requests["batch"] == 2
    assert "cannot read" in caplog.text
    fake_portal.reset_counters()
    assert await rest_directory.lookup("+74951234567") == found  # stored afresh: a hit now
    assert fake_portal.total_requests == 0
