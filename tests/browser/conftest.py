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
from playwright.async_api import Browser, async_playwright

from gateway.config import Settings
from tests.browser.demo import DemoPage
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
SECRET = "browser-tests-secret-0123456789abcdef"


def demo_settings() -> Settings:
    return Settings(secret=SECRET, host="127.0.0.1", port=0, demo=True)


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
async def demo(browser: Browser, gateway: str) -> AsyncIterator[DemoPage]:
    context = await browser.new_context()
    page = await context.new_page()
    driver = DemoPage(page, gateway)
    page.on("pageerror", lambda err: driver.errors.append(str(err)))
    try:
        yield driver
    finally:
        await context.close()
    assert driver.errors == [], f"the page threw: {driver.errors}"
