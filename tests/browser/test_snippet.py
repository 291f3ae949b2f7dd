"""The snippet in real Chromium, on the demo portal page, against a real gateway (issue 3 acceptance)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.browser.demo import (
    BLUE,
    DEFAULT,
    MINI,
    RED,
    WRAPPER,
    YELLOW,
    DemoPage,
    OpenDemo,
    demo_settings,
    ms,
)
from tests.cutter import cutter
from tests.support import running_gateway
from tests.timing import UNIT, timeout

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# The acceptance bound: the colour is on screen within 1 s of the ring.
WITHIN_ONE_SECOND = 1.0 * UNIT

ROMASHKA = "+7 (495) 123-45-67"  # ООО «Ромашка», IN_WORK, responsible user 6
NOT_IN_CRM = "+7 999 000-00-00"
APPLIED_COUNT = "callguard_ring_to_applied_seconds_count"


async def metric(base: str, name: str) -> float:
    """One sample of the gateway's /metrics, by its full name (labels included); 0 if absent."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base}/metrics")
    response.raise_for_status()
    for line in response.text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def wait_metric(base: str, name: str, expected: float) -> None:
    """Poll the gateway's /metrics until ``name`` reads ``expected`` (the applied frame is async)."""
    async with asyncio.timeout(timeout(1)):
        while True:
            if await metric(base, name) == expected:
                return
            await asyncio.sleep(0.02)


async def test_the_demo_page_loads_the_snippet_from_the_gateway(demo: DemoPage) -> None:
    await demo.open(user="7")
    await demo.connected()
    src = await demo.page.get_attribute("script[data-token]", "src")
    assert src == "/static/callguard.js"
    assert await demo.page.evaluate("document.querySelector('script[data-token]').src") == (
        f"{demo.base}/static/callguard.js"
    )
    assert "user 7" in await demo.page.inner_text("#cg-conn")


async def test_the_demo_and_the_snippet_work_under_the_pages_csp(demo: DemoPage) -> None:
    # Recorded from before the page's own scripts run; a blocked style, script or socket lands here.
    await demo.page.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation',"
        " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    await demo.open(user="7")
    await demo.connected()
    await demo.ring(ROMASHKA)
    await demo.wait_background(WRAPPER, RED, timeout(1))
    assert await demo.page.evaluate("() => window.__csp") == []
    assert demo.errors == []


async def test_a_foreign_client_turns_the_popup_red_and_it_follows_the_popup(
    demo: DemoPage, capsys: pytest.CaptureFixture[str]
) -> None:
    await demo.open(user="7")
    await demo.connected()
    await demo.ring(ROMASHKA)
    await demo.wait_background(WRAPPER, RED, WITHIN_ONE_SECOND)
    assert "Ромашка" in await demo.page.inner_text("#cg-reason")
    [paint] = await demo.paints()
    assert paint["rule"] == "foreign-client-in-work"
    with capsys.disabled():
        print(f"\n    ring -> applied (measured in the page): {paint['latency_ms']} ms")

    # Answering re-renders the popup, and the CRM card replaces the simple layout element with
    # the CRM one: each new wrapper element is red as well.
    ringing = await demo.page.query_selector(WRAPPER)
    assert ringing is not None
    await demo.page.click("#im-phone-call-view .im-phone-call-btn-green")
    assert not await ringing.evaluate("e => e.isConnected")
    assert await demo.background(WRAPPER) == RED
    simple = await demo.page.query_selector(WRAPPER)
    assert simple is not None
    await demo.page.click("#cg-crm")
    assert not await simple.evaluate("e => e.isConnected")
    assert await demo.page.locator(".im-phone-call-top-level").count() == 1
    assert await demo.background(WRAPPER) == RED

    # Folded into the mini panel, and back.
    await demo.page.click("#cg-fold")
    assert await demo.background(MINI) == RED
    await demo.page.click("#cg-fold")
    assert await demo.page.locator(MINI).count() == 0
    assert await demo.background(WRAPPER) == RED

    # Hanging up closes the popup; the colour goes with it.
    await demo.page.click("#cg-hangup")
    assert await demo.page.locator("#im-phone-call-view").count() == 0
    assert not await demo.styled()
    # The next popup, for a number the CRM does not know, keeps the portal's own colour.
    await demo.ring(NOT_IN_CRM)
    await demo.page.wait_for_selector("#cg-decision[data-colour='none']", timeout=ms(timeout(1)))
    assert await demo.background(WRAPPER) == DEFAULT
    assert not await demo.styled()


@pytest.mark.parametrize(
    ("phone", "colour", "rule"),
    [
        ("+7 903 765 43 21", YELLOW, "known-contact"),  # Татьяна Частная, a contact
        ("8 (921) 999-88-77", BLUE, "lead-only"),  # «Холодный лид», a lead only
    ],
    ids=["yellow", "blue"],
)
async def test_contacts_and_leads_get_their_colours(
    demo: DemoPage, phone: str, colour: str, rule: str
) -> None:
    await demo.open(user="7")
    await demo.connected()
    await demo.ring(phone)
    await demo.wait_background(WRAPPER, colour, WITHIN_ONE_SECOND)
    assert [p["rule"] for p in await demo.paints()] == [rule]


async def test_an_outgoing_call_is_coloured(demo: DemoPage) -> None:
    await demo.open(user="7")
    await demo.connected()
    await demo.dial(ROMASHKA)
    await demo.wait_background(WRAPPER, RED, timeout(1))
    assert "Исходящий" in await demo.page.inner_text(".im-phone-calling-text")
    await demo.page.click("#cg-hangup")
    assert not await demo.styled()


async def test_a_popup_seen_before_its_pull_event_keeps_its_colour_when_the_call_id_arrives(
    demo: DemoPage,
) -> None:
    # The popup opens at the dial; the snippet falls back to the popup's number before the
    # `outgoing` pull event brings the real call id 0.8 s later. Then it moves to that id.
    await demo.open(user="7", pull_ms="800")
    await demo.connected()
    await demo.dial(ROMASHKA)
    await demo.wait_background(WRAPPER, RED, timeout(1))
    await demo.page.wait_for_function(
        "() => window.__cg.paints.some(p => p.call_id.startsWith('externalCall.'))",
        timeout=ms(timeout(1)),
    )
    # Two calls reached the gateway (the DOM-named one, then the real one), one is left, and
    # the colour never left the popup in between.
    await wait_metric(demo.base, 'callguard_calls_total{source="ws"}', 2)
    await wait_metric(demo.base, "callguard_active_calls", 1)
    assert await demo.unstyled() == 0
    assert await demo.background(WRAPPER) == RED


async def test_a_call_the_gateway_clears_loses_its_colour_while_the_popup_stays(
    open_demo: OpenDemo,
) -> None:
    # The gateway ends the call on its own (call timeout) and pushes `clear`.
    async with running_gateway(demo_settings().but(call_timeout=1.0)) as base_url:
        demo = await open_demo(base_url)
        await demo.open(user="7")
        await demo.connected()
        await demo.ring(ROMASHKA)
        await demo.wait_background(WRAPPER, RED, WITHIN_ONE_SECOND)
        await demo.page.wait_for_function(
            "() => !document.getElementById('callguard-style')", timeout=ms(timeout(1))
        )
        assert await demo.page.locator("#im-phone-call-view").count() == 1
        assert await demo.background(WRAPPER) == DEFAULT
        await demo.page.click("#cg-hangup")
        assert demo.errors == []


async def test_the_manager_who_owns_the_client_gets_no_colour(demo: DemoPage) -> None:
    await demo.open(user="6")  # Анна Смирнова is responsible for ООО «Ромашка»
    await demo.connected()
    await demo.ring(ROMASHKA)
    await demo.page.wait_for_selector("#cg-decision[data-colour='none']", timeout=ms(timeout(1)))
    [paint] = await demo.paints()
    assert (paint["colour"], paint["rule"]) == ("none", None)
    assert await demo.background(WRAPPER) == DEFAULT


async def test_ring_to_applied_latency_reaches_the_gateway_metrics(
    demo: DemoPage, capsys: pytest.CaptureFixture[str]
) -> None:
    before = await metric(demo.base, APPLIED_COUNT)
    await demo.open(user="7")
    await demo.connected()
    await demo.ring(ROMASHKA)
    await demo.wait_background(WRAPPER, RED, WITHIN_ONE_SECOND)
    await wait_metric(demo.base, APPLIED_COUNT, before + 1)
    [paint] = await demo.paints()
    assert 0 <= paint["latency_ms"] <= ms(WITHIN_ONE_SECOND)
    with capsys.disabled():
        print(f"\n    ring -> applied: {paint['latency_ms']} ms, counted in {APPLIED_COUNT}")


async def test_without_bx_the_popup_itself_is_watched(demo: DemoPage) -> None:
    await demo.open(user="7", bx="0")
    await demo.connected()
    assert await demo.page.evaluate("typeof window.BX") == "undefined"
    await demo.ring(ROMASHKA)
    await demo.wait_background(WRAPPER, RED, timeout(1))
    await demo.page.click("#cg-crm")
    assert await demo.background(WRAPPER) == RED
    # Without CallCard::AfterClose, the popup going away ends the call.
    await demo.page.click("#cg-hangup")
    await demo.page.wait_for_function(
        "() => !document.getElementById('callguard-style')", timeout=ms(timeout(1))
    )
    assert demo.errors == []


async def test_a_refused_token_leaves_the_page_working_and_is_retried_only_minutes_later(
    demo: DemoPage,
) -> None:
    await demo.open(user="7", token="not-a-token")
    await demo.page.wait_for_function("() => window.__cg.closes.length > 0", timeout=ms(timeout(1)))
    assert await demo.closes() == [4401]
    assert await demo.page.get_attribute("#cg-conn", "data-state") == "refused"
    # The page goes on working; the snippet neither colours nor throws.
    await demo.ring(ROMASHKA)
    await demo.page.click("#cg-crm")
    await demo.page.click("#cg-fold")
    await demo.page.click("#cg-hangup")
    assert not await demo.styled()
    assert await demo.page.evaluate("window.__cg.hellos") == 0
    assert await demo.closes() == [4401]
    assert demo.errors == []


async def test_after_the_connection_drops_the_snippet_reconnects_and_resumes(
    demo: DemoPage,
) -> None:
    host, port = demo.base.removeprefix("http://").rsplit(":", 1)
    async with cutter(host, int(port)) as relay:
        await demo.open(user="7", ws=f"ws://127.0.0.1:{relay.port}/ws")
        await demo.connected()
        await demo.ring(ROMASHKA)
        await demo.wait_background(WRAPPER, RED, WITHIN_ONE_SECOND)

        # The gateway is unreachable: the colour is state and stays; a call made now waits.
        relay.refusing = True
        relay.cut()
        await demo.page.wait_for_function(
            "() => window.__cg.closes.length >= 1", timeout=ms(timeout(1))
        )
        assert await demo.background(WRAPPER) == RED
        await demo.page.click("#cg-hangup")
        await demo.ring("8 (921) 999-88-77")
        assert not await demo.styled()

        # Back: the snippet reconnects by itself, sends the `ended` it kept and the current call.
        relay.refusing = False
        await demo.connected(hellos=2)
        await demo.wait_background(WRAPPER, BLUE, timeout(1))
        await wait_metric(demo.base, "callguard_active_calls", 1)
        await demo.page.click("#cg-hangup")
        await wait_metric(demo.base, "callguard_active_calls", 0)
        assert relay.accepted >= 2
