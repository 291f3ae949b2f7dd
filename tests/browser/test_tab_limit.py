"""The snippet under CALLGUARD_MAX_TABS_PER_USER in real Chromium: a hidden tab the gateway
closed as a user's oldest ("too many tabs") stays away until it is shown, so a user with one
tab too many does not make the tabs close each other in turn for ever."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.demo import DemoPage, OpenDemo, demo_settings, ms
from tests.browser.test_snippet import metric
from tests.support import running_gateway
from tests.timing import timeout

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# Whether the page is hidden is the browser's to say; headless pages are always shown, so the
# test says it instead, the way a browser does: document.hidden and a visibilitychange event.
VISIBILITY = """
window.__closings = [];
addEventListener('callguard:close', function (e) { __closings.push(e.detail); });
window.__hidden = false;
Object.defineProperty(document, 'hidden', {configurable: true, get: function () { return __hidden; }});
window.__show = function (shown) {
  __hidden = !shown;
  document.dispatchEvent(new Event('visibilitychange'));
};
"""


async def open_tab(open_demo: OpenDemo, base: str) -> DemoPage:
    tab = await open_demo(base)
    await tab.page.add_init_script(VISIBILITY)
    await tab.open(user="7")
    await tab.connected()
    return tab


async def closed(tab: DemoPage) -> dict[str, Any]:
    await tab.page.wait_for_function("() => window.__closings.length >= 1", timeout=ms(timeout(2)))
    details: list[dict[str, Any]] = await tab.page.evaluate("window.__closings")
    return details[0]


async def test_a_hidden_tab_closed_as_the_oldest_comes_back_only_when_shown(
    open_demo: OpenDemo,
) -> None:
    async with running_gateway(demo_settings().but(max_tabs_per_user=1)) as base:
        first = await open_tab(open_demo, base)
        await first.page.evaluate("__show(false)")
        second = await open_tab(open_demo, base)  # one too many: the first, hidden, goes
        assert await closed(first) == {"code": 1008, "reason": "too many tabs", "retry": None}

        await second.page.evaluate("__show(false)")
        await first.page.evaluate("__show(true)")  # back: now the second is the oldest
        await first.connected(hellos=2)
        assert await closed(second) == {"code": 1008, "reason": "too many tabs", "retry": None}
        evictions = 'callguard_connections_refused_total{reason="too_many_tabs"}'
        assert await metric(base, evictions) == 2
