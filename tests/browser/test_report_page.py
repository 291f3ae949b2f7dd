"""The report page in real headless Chromium: it renders, under the pages' CSP, a chart with one
bar per day that had red calls, and the list."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser

from gateway.live.tokens import issue_token
from gateway.run.runtime import Gateway
from gateway.store.ledger import LedgerRow
from gateway.web.app import create_app
from tests.browser.demo import SECRET, demo_settings, ms
from tests.support import running_app
from tests.timing import timeout

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


def call(call_id: str, day: int, hour: int, colour: str = "red", caller: str = "7") -> LedgerRow:
    return LedgerRow(
        datetime(2026, 3, day, hour, tzinfo=UTC), call_id, caller, "out", "ws", colour,
        "other_manager_active", "company", "10", "ООО «Ромашка»", "6", "Анна Смирнова", "4567",
    )  # fmt: skip


async def test_the_report_page_draws_a_bar_per_day_with_red_calls(browser: Browser) -> None:
    settings = demo_settings()
    app = create_app(settings)
    context = await browser.new_context()
    try:
        async with running_app(app, settings) as base:
            gateway: Gateway = app.state.gateway
            await gateway.ledger.write(
                [
                    call("a", 2, 9),
                    call("b", 2, 10, caller="8"),
                    call("c", 4, 12),
                    call("d", 6, 8, caller="8"),
                    call("e", 5, 8, colour="green"),  # not red: no bar
                ]
            )
            page = await context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda err: problems.append(str(err)))
            page.on(
                "console",
                lambda msg: problems.append(msg.text) if "Content Security" in msg.text else None,
            )
            page.on(
                "response",
                lambda r: (
                    problems.append(r.url) if r.status >= 400 and "favicon" not in r.url else None
                ),
            )
            token = issue_token(SECRET, "1", 600.0)  # the data file's administrator
            answer = await page.goto(
                f"{base}/report?from=2026-03-01&to=2026-03-07&colour=all&lang=en&token={token}",
                timeout=ms(timeout(1)),
            )
            assert answer is not None
            assert answer.status == 200
            await page.wait_for_selector("svg.chart", timeout=ms(timeout(1)))
            bars = await page.eval_on_selector_all(
                "svg.chart rect.bar",
                "els => els.map(e => [e.dataset.day, e.dataset.calls, e.getBBox().height])",
            )
            assert [(d, n) for d, n, _ in bars] == [
                ("2026-03-02", "2"),
                ("2026-03-04", "1"),
                ("2026-03-06", "1"),
            ]
            heights = [h for _, _, h in bars]
            assert heights[0] > heights[1] > 0  # two calls stand twice as tall as one
            rows = await page.eval_on_selector_all("tr.call", "els => els.length")
            assert rows == 5
            assert problems == []
    finally:
        await context.close()
