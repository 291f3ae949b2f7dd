"""Issue 9 item 6 on a real gateway: a burst of one user's calls reaches every reading tab."""

from __future__ import annotations

import asyncio

import orjson
from websockets.asyncio.client import ClientConnection, connect

from gateway.live.calls import MAX_CALLS_PER_USER
from gateway.run.runtime import Gateway
from gateway.web.app import create_app
from tests.live.conftest import RED_CALLER, RED_PHONE
from tests.live.test_loopback import call, recv, ws_url
from tests.support import gateway_settings, running_app
from tests.timing import timeout

TABS = 5
CALLS = 40


async def calls_seen(ws: ClientConnection, expected: set[str]) -> set[str]:
    """Read until every call in ``expected`` came as a paint or a clear; the ids seen."""
    seen: set[str] = set()
    async with asyncio.timeout(timeout(2)):
        while not expected <= seen:
            doc = orjson.loads(await ws.recv())
            assert doc["type"] in ("paint", "clear"), doc
            seen.add(doc["call_id"])
    return seen


async def test_40_calls_of_one_user_reach_all_5_reading_tabs_and_none_is_closed() -> None:
    settings = gateway_settings()
    app = create_app(settings)
    gateway: Gateway = app.state.gateway
    async with running_app(app, settings) as url:
        sockets = [await connect(ws_url(url, RED_CALLER)) for _ in range(TABS)]
        try:
            for ws in sockets:
                assert (await recv(ws))["type"] == "hello"
            ids = [f"c{n}" for n in range(CALLS)]
            # Each tab rings its share at once (within the per-tab call rate): one burst.
            share = CALLS // TABS
            await asyncio.gather(
                *(
                    asyncio.gather(
                        *(ws.send(orjson.dumps(call(c, RED_PHONE)).decode()) for c in mine)
                    )
                    for ws, mine in zip(
                        sockets, (ids[i : i + share] for i in range(0, CALLS, share)), strict=True
                    )
                )
            )
            seen = await asyncio.gather(*(calls_seen(ws, set(ids)) for ws in sockets))
            assert all(s == set(ids) for s in seen)
            assert gateway.calls.active == MAX_CALLS_PER_USER
            for ws in sockets:  # each tab is still open and answering
                await ws.send("{nope")
                assert (await recv(ws))["code"] == "invalid_json"
            assert gateway.tabs.count == TABS
        finally:
            for ws in sockets:
                await ws.close()
    assert "callguard_tab_closes_total" not in gateway.metrics.render().decode().replace(
        "# HELP callguard_tab_closes_total", ""
    ).replace("# TYPE callguard_tab_closes_total", "")
