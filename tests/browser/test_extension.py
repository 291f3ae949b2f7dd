"""The browser extension in real Chromium (issue 13 acceptance): Debian's chromium loads the
unpacked extension that `callguard extension` wrote, the user signs in through the fake portal's
OAuth without doing anything, and a call on a page at the portal's origin turns the popup red for
that user.

MV3 extensions need a persistent profile: Playwright's ``launch_persistent_context`` with
``--load-extension`` and ``--disable-extensions-except`` (headless is Chromium's new headless
mode, which runs extensions). The portal is on 127.0.0.2 and the gateway on 127.0.0.1: match
patterns ignore ports, so the two need different hosts for the content script to run on the
portal's pages only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, Page, async_playwright

from gateway.live.tokens import check_token
from gateway.tools.extension import build, target
from gateway.tools.fakeportal import FakePortal
from gateway.tools.fakeportal.oauth import USER_COOKIE
from tests.browser.conftest import ARGS
from tests.browser.demo import RECORDER, RED, WRAPPER, ms
from tests.browser.portal_page import portal_pages
from tests.signin import pinned_in, signin_gateway
from tests.support import TEST_SECRET
from tests.timing import timeout

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

ROMASHKA = "+7 (495) 123-45-67"  # ООО «Ромашка», IN_WORK, responsible user 6: red for user 7
PORTAL_HOST = "127.0.0.2"
# Seconds: the tokens sign-in gives, so that the socket renews one within the test (at 40-50%
# of it), long after the page has connected, even on a slow machine.
TOKEN_TTL = 20
# In an extension page: the token the extension keeps, or (with an argument) one that is not it.
STORED = "() => new Promise(r => chrome.storage.local.get('token', s => r(s.token || '')))"
RENEWED = """old => new Promise(r => {
  const check = () => chrome.storage.local.get('token', s => { if (s.token !== old) r(s.token); });
  chrome.storage.onChanged.addListener(check);
  check();
})"""


class Setup:
    def __init__(self, context: BrowserContext, portal: FakePortal, pages: str, gateway: str):
        self.context = context
        self.portal = portal
        self.pages = pages
        self.gateway = gateway

    async def extension_id(self) -> str:
        workers = self.context.service_workers
        worker = (
            workers[0]
            if workers
            else await self.context.wait_for_event("serviceworker", timeout=ms(timeout(2)))
        )
        return worker.url.split("/")[2]


@pytest_asyncio.fixture(loop_scope="session")
async def setup(
    chromium: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Setup]:
    """Portal, gateway, portal pages and Chromium with the extension. An indirect parameter is
    a member_id already pinned in the gateway's state dir (another portal account)."""
    database = tmp_path / "callguard.sqlite3"
    pinned = getattr(request, "param", None)
    if pinned:
        await pinned_in(database, pinned)
    async with (
        FakePortal(host=PORTAL_HOST) as portal,
        portal_pages(PORTAL_HOST) as pages,
        # The content script's socket carries its page's origin: the pages' port is not the
        # fake portal's, so it is allowed by name (a real portal's origin is by default).
        signin_gateway(
            portal, database, token_ttl=float(TOKEN_TTL), allowed_origins=(pages,)
        ) as gateway,
        async_playwright() as playwright,
    ):
        folder, _ = build(target(pages, gateway, "en"), tmp_path / "extension")
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(chromium),
            headless=True,
            args=[
                *ARGS,
                f"--disable-extensions-except={folder}",
                f"--load-extension={folder}",
            ],
        )
        try:
            # The user is signed in to the portal (its session cookie).
            await context.add_cookies([{"name": USER_COOKIE, "value": "7", "url": portal.url}])
            await context.add_init_script(RECORDER)
            yield Setup(context, portal, pages, gateway)
        finally:
            await context.close()


async def open_portal_page(setup: Setup, errors: list[str]) -> Page:
    page = await setup.context.new_page()
    page.on("pageerror", lambda err: errors.append(str(err)))
    await page.goto(f"{setup.pages}/demo/?user=7")
    return page


async def test_the_extension_signs_in_by_itself_and_colours_the_popup(setup: Setup) -> None:
    extension = await setup.extension_id()
    errors: list[str] = []
    page = await open_portal_page(setup, errors)
    # No token yet: the content script asks, the background signs in through a tab of its own
    # (the portal sends the signed-in user straight back), and the snippet connects.
    await page.wait_for_function("window.__cg.hellos >= 1", timeout=ms(timeout(4)))
    await page.fill("#cg-phone", ROMASHKA)
    await page.click("#cg-incoming")
    await page.wait_for_function(
        """([selector, colour]) => {
          const el = document.querySelector(selector);
          return !!el && getComputedStyle(el).backgroundColor === colour;
        }""",
        arg=[WRAPPER, RED],
        timeout=ms(timeout(2)),
    )
    # The sign-in tab closed itself; the options page says who is signed in.
    for tab in [p for p in setup.context.pages if "/auth/" in p.url]:
        if not tab.is_closed():
            await tab.wait_for_event("close", timeout=ms(timeout(1)))
    options = await setup.context.new_page()
    await options.goto(f"chrome-extension://{extension}/options.html")
    await options.wait_for_selector("#status[data-user='7']", timeout=ms(timeout(1)))
    first = await options.evaluate(STORED)
    signed_in = check_token(TEST_SECRET, first)
    assert (signed_in.user_id, signed_in.lifetime) == ("7", TOKEN_TTL)
    # The socket renews the tab's token; the extension keeps the newest for the next page.
    async with asyncio.timeout(timeout(3)):
        renewed = check_token(TEST_SECRET, await options.evaluate(RENEWED, first))
    assert (renewed.user_id, renewed.lifetime) == ("7", TOKEN_TTL)
    assert renewed.issued_at > signed_in.issued_at
    assert setup.portal.oauth.exchanges == 1
    assert errors == []


@pytest.mark.parametrize("setup", ["f" * 32], indirect=True)
async def test_a_refused_sign_in_shows_on_the_extensions_page(setup: Setup) -> None:
    """The gateway serves another portal account: the user's sign-in is refused (403), the
    sign-in tab they opened stays on the refusal, and the extension's page says why."""
    extension = await setup.extension_id()
    options = await setup.context.new_page()
    await options.goto(f"chrome-extension://{extension}/options.html")
    async with setup.context.expect_page(timeout=ms(timeout(2))) as opened:
        await options.click("#signin")
    signin = await opened.value
    await signin.wait_for_selector(
        "#callguard-signin[data-error='wrong_portal']", timeout=ms(timeout(2))
    )
    await options.wait_for_selector("#error:not([hidden])", timeout=ms(timeout(1)))
    error = await options.inner_text("#error")
    assert error.startswith("wrong_portal: ")
    assert "f" * 32 in error
    assert await options.get_attribute("#status", "data-user") == ""
