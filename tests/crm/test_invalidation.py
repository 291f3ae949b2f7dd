"""Invalidation that never leaves a stale colour: the entity index is updated atomically (SADD,
no read-modify-write), outlives its entries, and a change handled while lookups are in flight
wins over them — in one process, and across two processes sharing Redis."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from gateway.crm.build import build_directory
from gateway.crm.cache import CachedDirectory
from gateway.tools.fakeportal import FakePortal
from tests.crm.conftest import portal_settings, redis_processes
from tests.timing import timeout

COMPANY = "11"
# Company 11's own numbers, and its contacts' (22 is linked to 12 as well).
NUMBERS = ["+74952223344", "+79261112233", "+79031234567"]
STATUSES = ["PENDING", "DECLINED", "IN_WORK"]


@pytest.fixture(params=["memory", "redis"])
async def pair(
    request: pytest.FixtureRequest, fake_portal: FakePortal
) -> AsyncIterator[tuple[CachedDirectory, CachedDirectory]]:
    """(the process handling events, the process looking numbers up): one process in memory,
    two on a shared Redis."""
    settings = portal_settings(fake_portal)
    if request.param == "memory":
        one = build_directory(settings)
        yield one, one
        await one.close()
        return
    async with redis_processes(fake_portal) as (one, two):
        yield one, two


def status_of(found: object, company: str) -> str | None:
    companies = [*found.companies, *found.linked_companies]  # type: ignore[attr-defined]
    return next(c.status for c in companies if c.id == company)


async def test_concurrent_lookups_never_keep_a_colour_from_before_a_handled_change(
    pair: tuple[CachedDirectory, CachedDirectory], fake_portal: FakePortal
) -> None:
    events, lookups = pair
    fake_portal.set_latency(0.005)  # lookups stay in flight while changes are handled
    rng = random.Random(10)
    for round_ in range(12):
        status = STATUSES[round_ % 3]
        flying = [asyncio.ensure_future(lookups.lookup(rng.choice(NUMBERS))) for _ in range(20)]
        await asyncio.sleep(rng.uniform(0, 0.03))  # the change lands at a random moment
        fake_portal.set_company_status(COMPANY, status)
        await events.changed("company", COMPANY, False)
        # The event is handled: from now on every number shows the new status.
        for phone in NUMBERS:
            found = await asyncio.wait_for(lookups.lookup(phone), timeout())
            assert status_of(found, COMPANY) == status, (round_, phone)
        await asyncio.wait_for(asyncio.gather(*flying), timeout())
        for phone in NUMBERS:  # and no lookup that was overtaken stored the old one
            assert status_of(await lookups.lookup(phone), COMPANY) == status, (round_, phone)


async def test_concurrent_lookups_all_land_in_the_index(
    pair: tuple[CachedDirectory, CachedDirectory], fake_portal: FakePortal
) -> None:
    # Read-modify-write of one JSON list lost numbers when lookups stored at the same time.
    events, lookups = pair
    fake_portal.set_latency(0.01)
    await asyncio.wait_for(asyncio.gather(*(lookups.lookup(p) for p in NUMBERS)), timeout())
    assert await events.phones_for("company", COMPANY) == set(NUMBERS)
    assert await events.phones_for("company", "12") == {"+79031234567"}
    assert await events.invalidate_entity("company", COMPANY) == set(NUMBERS)
    assert await events.phones_for("company", COMPANY) == set()


async def test_a_contact_linked_since_changes_with_its_company(
    pair: tuple[CachedDirectory, CachedDirectory], fake_portal: FakePortal
) -> None:
    events, lookups = pair
    lonely = "+79998765432"  # contact 29, no company yet
    assert (await lookups.lookup(lonely)).linked_companies == ()
    fake_portal.update("contact", "29", {"COMPANY_IDS": [COMPANY]})
    # Linked from the company's card: the portal reports the company's change.
    assert lonely in await events.changed("company", COMPANY, False)
    assert [c.id for c in (await lookups.lookup(lonely)).linked_companies] == [COMPANY]


async def test_a_change_whose_re_read_fails_still_drops_and_reports_the_old_numbers(
    pair: tuple[CachedDirectory, CachedDirectory], fake_portal: FakePortal
) -> None:
    events, lookups = pair
    for phone in NUMBERS:
        await lookups.lookup(phone)
    fake_portal.fail("batch", 500, "INTERNAL_SERVER_ERROR", "down", times=1)
    # The open calls on these numbers are decided again by the intake.
    assert await events.changed("company", COMPANY, False) == set(NUMBERS)
    fake_portal.reset_counters()
    await lookups.lookup(NUMBERS[0])
    assert fake_portal.requests == {"batch": 2}  # dropped: looked up afresh
