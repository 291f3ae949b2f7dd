"""Heartbeat pings of tabs that connected together are spread over the interval."""

from __future__ import annotations

import asyncio

from gateway.tools.tabclient import Tab
from tests.support import gateway_settings, running_gateway
from tests.timing import timeout
from tests.tools.test_tabclient import ws

HEARTBEAT = 1.0  # seconds
TABS = 30


def ignore(_tab: Tab, _frame: bytes) -> None:
    return None


async def test_tabs_that_connect_together_are_not_pinged_together() -> None:
    """A restart's reconnect storm (or a load test) connects every tab within a moment: with
    each first ping one interval after its connect, all would be pinged within that moment,
    every interval, for as long as they live."""
    async with running_gateway(gateway_settings(heartbeat=HEARTBEAT)) as base:
        async with asyncio.timeout(timeout(4)):
            tabs = await asyncio.gather(
                *(Tab.connect(ws(base, str(700 + i)), ignore) for i in range(TABS))
            )
            # Every tab is pinged (the timeout above catches one that never is).
            while any(tab.first_ping is None for tab in tabs):  # noqa: ASYNC110 - a ping is a parser event, no future to wait on
                await asyncio.sleep(0.02)
            firsts = sorted(t.first_ping for t in tabs if t.first_ping is not None)
            await asyncio.gather(*(tab.close() for tab in tabs))
    # Spread: thirty uniform draws over 1 s all fall within 0.3 s with a probability of ~1e-14;
    # with the first ping one interval after connecting they fell within the connect's moment.
    assert firsts[-1] - firsts[0] >= 0.3 * HEARTBEAT, firsts
