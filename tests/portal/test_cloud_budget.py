"""Acceptance of the lookup budget under a cloud portal's limits (2 requests/s, burst 50, on both
the gateway's side and the fake portal's): a morning burst of cold numbers, then a steady
stream; a storm of CRM events, then a live call; a linked contact after its company's change."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gateway.crm.datafile import findings_for
from gateway.crm.dataset import Dataset, demo_path, parse_dataset
from gateway.tools.fakeportal import FakePortal
from rules import decide, load_policy
from rules.phones import normalize
from tests.portal.conftest import Running, Tab, open_tab, rest_gateway, settle
from tests.timing import timeout

CLOUD = {"rate_burst": 50, "rate_per_second": 2.0}
CALLERS = ["5", "6", "7", "8", "9"]


def cloud_data(count: int, statuses: dict[int, str] | None = None) -> Dataset:
    """The demo data and ``count`` more companies, each with one number and a contact whose own
    number is linked to it."""
    doc = json.loads(Path(demo_path()).read_text(encoding="utf-8"))
    for i in range(count):
        company, contact = 500 + i, 700 + i
        doc["companies"].append(
            {
                "id": company,
                "title": f"Фирма {i}",
                "assigned_by": 1 + i % 4,
                "status": (statuses or {}).get(company) or ("PENDING" if i % 4 == 0 else "IN_WORK"),
                "phones": [f"+7 901 000-{i // 100:02d}-{i % 100:02d}"],
                "contacts": [contact],
            }
        )
        doc["contacts"].append(
            {
                "id": contact,
                "name": f"Контакт {i}",
                "assigned_by": 2 + i % 3,
                "phones": [f"8 902 000-{i // 100:02d}-{i % 100:02d}"],
                "companies": [company],
            }
        )
    return parse_dataset(doc)


def numbers(count: int) -> list[str]:
    # Alternate a company's own number and a linked contact's.
    return [
        f"+7 901 000-{i // 100:02d}-{i % 100:02d}"
        if i % 2
        else f"8 902 000-{i // 100:02d}-{i % 100:02d}"
        for i in range(count)
    ]


def expected(data: Dataset, phone: str, caller: str) -> str:
    return decide(findings_for(data, normalize(phone)), caller, load_policy()).colour


@contextlib.asynccontextmanager
async def cloud_gateway(
    data: Dataset, **changes: object
) -> AsyncIterator[tuple[FakePortal, Running, list[Tab]]]:
    async with (
        FakePortal(data, rate_limit=(50, 2.0)) as portal,
        rest_gateway(portal, **CLOUD, **changes) as gw,
        contextlib.AsyncExitStack() as stack,
    ):
        tabs = [await stack.enter_async_context(open_tab(gw.url, u)) for u in CALLERS]
        yield portal, gw, tabs


async def send(tab: Tab, call_id: str, phone: str) -> None:
    await tab.socket.send(json.dumps({"type": "call", "call_id": call_id, "phone": phone}))


async def paint_of(tab: Tab, call_id: str) -> dict[str, Any]:
    """The next paint of ``call_id`` (repaints of open calls after an event are skipped)."""
    while True:
        paint = await tab.next("paint")
        if paint["call_id"] == call_id:
            return paint


async def paints(tab: Tab, count: int) -> dict[str, dict[str, Any]]:
    got: dict[str, dict[str, Any]] = {}
    while len(got) < count:
        paint = await tab.next("paint")
        got[paint["call_id"]] = paint
    return got


async def test_a_morning_burst_then_one_new_number_a_second_are_all_coloured() -> None:
    data = cloud_data(45)
    phones = numbers(45)
    async with cloud_gateway(data) as (portal, _gw, tabs):
        # 25 distinct cold numbers at once, five per tab (the per-tab limit is 10 calls/s).
        for i, phone in enumerate(phones[:25]):
            await send(tabs[i % 5], f"burst-{i}", phone)
        painted = {}
        for tab in tabs:
            painted.update(await paints(tab, 5))
        for i, phone in enumerate(phones[:25]):
            colour = expected(data, phone, CALLERS[i % 5])
            assert colour != "none"
            assert painted[f"burst-{i}"]["colour"] == colour, (i, painted[f"burst-{i}"])
        # Then 20 more, one a second: the budget drains 2/s, each number costs 2.
        for i, phone in enumerate(phones[25:], start=25):
            paced = asyncio.ensure_future(asyncio.sleep(1.0))  # the scenario's pace
            tab = tabs[i % 5]
            await send(tab, f"steady-{i}", phone)
            paint = await paint_of(tab, f"steady-{i}")
            assert paint["colour"] == expected(data, phone, CALLERS[i % 5]), (i, paint)
            await paced
        # Two per number; a rare extra one when the portal's clock and ours disagree by a hair.
        assert portal.requests["batch"] <= 2 * 45 + 3


async def test_a_live_call_after_200_company_events_is_coloured() -> None:
    data = cloud_data(45)
    async with cloud_gateway(data) as (portal, _gw, tabs):
        for i in range(200):  # a CRM import: 200 updates posted at once
            portal.update("company", str(500 + i % 45), {"TITLE": f"Фирма {i}"})
        await portal.deliveries.wait(1, timeout())  # the storm has begun
        phone = numbers(45)[3]
        await send(tabs[0], "live", phone)
        # Generous: a hang guard, not a speed claim (the bench measures the time).
        paint = await asyncio.wait_for(paint_of(tabs[0], "live"), timeout(2))
        assert paint["colour"] == expected(data, phone, CALLERS[0])


async def test_a_linked_contact_changes_colour_on_the_next_call_after_its_company_does() -> None:
    data = cloud_data(4)
    contact_phone = numbers(4)[2]  # contact 702, linked to company 502 (IN_WORK, user 3)
    # User 1 is an administrator: the status guard lets the changes stand.
    async with cloud_gateway(data, cache_ttl=3600.0, admins=("1",)) as (portal, gw, tabs):
        await send(tabs[1], "c1", contact_phone)
        assert (await paint_of(tabs[1], "c1"))["colour"] == "red"
        portal.set_company_status("502", "DECLINED", by_user=1)
        await settle(portal, gw, 1)
        await send(tabs[1], "c2", contact_phone)
        declined = expected(cloud_data(4, {502: "DECLINED"}), contact_phone, CALLERS[1])
        assert declined != "red"
        assert (await paint_of(tabs[1], "c2"))["colour"] == declined
        portal.set_company_status("502", "IN_WORK", by_user=1)
        await settle(portal, gw, 2)
        await send(tabs[1], "c3", contact_phone)
        assert (await paint_of(tabs[1], "c3"))["colour"] == "red"


async def test_one_users_flood_leaves_the_others_their_cold_numbers() -> None:
    # With CALLGUARD_USER_RATE_SHARE=1 (no per-user share) user 6's numbers all paint "none".
    data = cloud_data(60)
    phones = numbers(60)
    async with cloud_gateway(data) as (_portal, gw, tabs), contextlib.AsyncExitStack() as stack:
        flooders = [await stack.enter_async_context(open_tab(gw.url, "5")) for _ in range(4)]
        for i, phone in enumerate(phones[:40]):  # user 5: 40 cold numbers at once
            await send(flooders[i % 4], f"flood-{i}", phone)
        others = phones[40:45]
        for i, phone in enumerate(others):  # user 6, meanwhile: 5 cold numbers
            await send(tabs[1], f"other-{i}", phone)
        for i, phone in enumerate(others):
            paint = await paint_of(tabs[1], f"other-{i}")
            assert paint["colour"] == expected(data, phone, "6"), (i, paint)
