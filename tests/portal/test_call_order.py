"""Telephony events never wait on CRM lookups (issue 9 item 5), and a call's order still holds.

A real gateway on loopback over a CRM that hangs until the test releases it; the fake portal
posts the events, tabs are real websockets. Nothing here measures time: the clear must arrive
while the lookup is still held, which it cannot if the end waits behind the start's lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from gateway.portal.events import CallEnd, CallInit, CallStart
from gateway.run.runtime import Gateway
from gateway.tools.fakeportal import FakePortal
from tests.live.conftest import HangingDirectory
from tests.portal.conftest import WEBHOOK_TOKEN, Running, Tab, gateway_running, open_tab
from tests.portal.conftest import portal_settings as settings_for
from tests.timing import timeout

RED_PHONE = "+7 (495) 123-45-67"
OTHER_PHONE = "+7 916 555-44-33"
CALL_EVENTS = ["ONVOXIMPLANTCALLINIT", "ONVOXIMPLANTCALLSTART", "ONVOXIMPLANTCALLEND"]
# A lookup deadline far beyond any test: a late "none" paint must not be what unblocks anything.
NEVER = 600.0


@contextlib.asynccontextmanager
async def over_hanging_crm() -> AsyncIterator[tuple[HangingDirectory, Running, Tab]]:
    """A gateway whose CRM hangs until released, and a tab of user 7 on it."""
    crm = HangingDirectory()
    async with (
        gateway_running(settings_for(lookup_deadline=NEVER), crm) as gw,
        open_tab(gw.url, "7") as tab,
    ):
        try:
            yield crm, gw, tab
        finally:
            crm.release()  # a failed test must not leave the paints hanging for the teardown
        await gw.idle()


async def handled(gw: Running) -> None:
    """Wait until the telephony worker handled every queued event (not the paints it started)."""
    async with asyncio.timeout(timeout()):
        await gw.portal.telephony.join()


async def ring(fake: FakePortal, gw: Running) -> None:
    """The portal rings user 7 on call c1 (init, start); once this returns the start has been
    handled, so its paint is under way."""
    fake.subscribe(gw.events_url, WEBHOOK_TOKEN, CALL_EVENTS)
    fake.call_init("c1", RED_PHONE)
    fake.call_start("c1", 7)
    await fake.deliveries.wait(2, timeout())
    await handled(gw)


async def frames_until_paint_of(tab: Tab, call_id: str) -> list[dict[str, object]]:
    """Every frame up to and including the paint of ``call_id``."""
    frames = []
    while True:
        frame = await tab.next()
        frames.append(frame)
        if frame["type"] == "paint" and frame["call_id"] == call_id:
            return frames


async def no_late_paint_of(gw: Running, tab: Tab, call_id: str) -> None:
    """Once the CRM answered, a call painted after it (a sentinel) comes with no paint of
    ``call_id`` before it: the ended call's late decision was dropped."""
    await tab.socket.send(
        f'{{"type":"call","call_id":"sentinel","phone":"{OTHER_PHONE}","direction":"in"}}'
    )
    frames = await frames_until_paint_of(tab, "sentinel")
    # A clear may come: the start registered the call (and took its place in flight) at once.
    assert [f for f in frames if f.get("call_id") == call_id and f["type"] == "paint"] == []
    gateway: Gateway = gw.app.state.gateway
    assert call_id not in {cid for cid, _ in gateway.calls.current_frames("7")}


async def test_a_call_end_clears_while_the_crm_still_hangs(fake: FakePortal) -> None:
    async with over_hanging_crm() as (crm, gw, tab):
        await ring(fake, gw)
        assert crm.started >= 1  # the pre-warm's lookup, and maybe the start's own
        fake.call_end("c1", RED_PHONE, 7)
        assert await tab.next() == {"type": "clear", "call_id": "c1"}
        assert crm.finished == 0  # the clear came while the CRM still held the lookup
        crm.release()
        await no_late_paint_of(gw, tab, "c1")


async def test_an_end_right_behind_its_start_is_not_overtaken_by_the_paint() -> None:
    async with over_hanging_crm() as (crm, gw, tab):
        queue = gw.portal.telephony
        # Handled back to back by the one telephony worker, before the start's paint runs.
        for event in (
            CallInit("c1", RED_PHONE, "in"),
            CallStart("c1", "7"),
            CallEnd("c1", "7"),
        ):
            assert queue.offer(event)
        await handled(gw)
        gateway: Gateway = gw.app.state.gateway
        assert gateway.calls.active == 0
        crm.release()
        await no_late_paint_of(gw, tab, "c1")


async def test_a_start_still_paints_once_the_crm_answers(fake: FakePortal) -> None:
    async with over_hanging_crm() as (crm, gw, tab):
        await ring(fake, gw)
        crm.release()
        paint = await tab.next("paint")
        assert (paint["call_id"], paint["seq"]) == ("c1", 1)
