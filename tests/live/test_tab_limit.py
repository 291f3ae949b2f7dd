"""CALLGUARD_MAX_TABS_PER_USER on a real gateway: one tab more closes the user's oldest."""

from __future__ import annotations

import contextlib

import httpx
from websockets.asyncio.client import ClientConnection, connect

from gateway.live.tabs import CLOSE_ABUSE, TOO_MANY_TABS
from tests.live.test_loopback import closed_code, recv, ws_url
from tests.support import gateway_settings, running_gateway


async def test_the_31st_tab_of_a_user_closes_the_oldest_with_1008_too_many_tabs() -> None:
    async with running_gateway(gateway_settings()) as base, contextlib.AsyncExitStack() as stack:
        tabs: list[ClientConnection] = []
        for _ in range(30):  # the default limit
            tab = await stack.enter_async_context(connect(ws_url(base, "7")))
            assert (await recv(tab))["type"] == "hello"
            tabs.append(tab)
        other = await stack.enter_async_context(connect(ws_url(base, "8")))
        assert (await recv(other))["type"] == "hello"
        newest = await stack.enter_async_context(connect(ws_url(base, "7")))
        assert (await recv(newest))["type"] == "hello"
        assert await closed_code(tabs[0]) == CLOSE_ABUSE
        assert tabs[0].close_reason == TOO_MANY_TABS
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(base + "/metrics")).text
            health = (await client.get(base + "/healthz")).json()
        assert 'callguard_connections_refused_total{reason="too_many_tabs"} 1.0' in metrics
        assert 'callguard_tab_closes_total{code="1008"} 1.0' in metrics
        assert (health["tabs"], health["users"]) == (31, 2)  # 30 of user 7, one of user 8
        await newest.ping()  # the new one stays open
