"""Real headless Chromium (Debian's /usr/bin/chromium, never a downloaded build) against a real gateway.

One browser per session, a fresh context per test, the gateway in-process on a loopback port
(tests/support.running_gateway) in demo mode. Without chromium the suite is skipped locally and
fails on CI (CI is set), where .ci/run installs it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, async_playwright

from tests.browser.demo import DemoPage, OpenDemo, demo_settings
from tests.support import running_gateway

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def gateway() -> AsyncIterator[str]:
    async with running_gateway(demo_settings()) as base_url:
        yield base_url.rstrip("/")


@pytest_asyncio.fixture(loop_scope="session")
async def open_demo(browser: Browser) -> AsyncIterator[OpenDemo]:
    """A factory: a fresh browser context on the demo page of the gateway at a base URL."""
    contexts: list[BrowserContext] = []
    drivers: list[DemoPage] = []

    async def open_on(base_url: str) -> DemoPage:
        context = await browser.new_context()
        contexts.append(context)
        page = await context.new_page()
        driver = DemoPage(page, base_url.rstrip("/"))
        page.on("pageerror", lambda err: driver.errors.append(str(err)))
        drivers.append(driver)
        return driver

    try:
        yield open_on
    finally:
        for context in contexts:
            await context.close()
    thrown = [error for driver in drivers for error in driver.errors]
    assert thrown == [], f"the page threw: {thrown}"


@pytest_asyncio.fixture(loop_scope="session")
async def demo(open_demo: OpenDemo, gateway: str) -> DemoPage:
    return await open_demo(gateway)
