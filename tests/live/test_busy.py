"""Issue 14 item 1 on a real gateway on loopback: beyond the calls in flight a user (or the
gateway) may have, a tab's call gets ``error`` ``busy`` at once, without a strike, and
``POST /api/calls`` gets 503 ``busy`` with Retry-After. The CRM hangs until the test releases it,
so the admitted calls stay in flight as long as the test needs."""

from __future__ import annotations

import httpx
from websockets.asyncio.client import connect

from gateway.run.runtime import Gateway
from gateway.web.app import create_app
from tests.live.conftest import API_KEY, OWNER, RED_CALLER, HangingDirectory
from tests.live.test_loopback import call, recv, send, ws_url
from tests.support import gateway_settings, running_app
from tests.timing import timeout

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def phone(n: int) -> str:
    return f"+7 926 6{n:02d} 00 00"


def metric(text: str, name: str) -> float:
    [value] = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(value)


async def test_calls_beyond_the_bounds_are_refused_busy_and_the_rest_paint() -> None:
    crm = HangingDirectory()
    settings = gateway_settings(api_key=API_KEY, tab_call_rate=1000.0, lookup_deadline=30.0)
    settings = settings.but(user_inflight=2, max_inflight=3)
    app = create_app(settings, crm)
    gateway: Gateway = app.state.gateway
    async with (
        running_app(app, settings) as url,
        connect(ws_url(url, RED_CALLER)) as tab,
        connect(ws_url(url, RED_CALLER)) as second,
        connect(ws_url(url, OWNER)) as other,
        httpx.AsyncClient(base_url=url, timeout=timeout()) as http,
    ):
        for ws in (tab, second, other):
            assert (await recv(ws))["type"] == "hello"
        await send(tab, call("c1", phone(1)))
        await send(tab, call("c2", phone(2)))
        for n in range(3, 15):  # more than the 8 bad frames that close a tab: busy is no strike
            await send(tab, call(f"c{n}", phone(n)))
            refused = await recv(tab)
            assert (refused["type"], refused["code"]) == ("error", "busy")
            assert "CALLGUARD_USER_INFLIGHT" in str(refused["message"])
        # The same calls again take no place: another tab's report of the ring joins it, a new
        # number for it replaces the decide under way. Nothing is refused, so the next answer
        # on each tab is the one to a bad frame.
        await send(second, call("c1", phone(1)))
        await send(tab, call("c2", phone(40)))
        for ws in (tab, second):
            await ws.send("{nope")
            assert (await recv(ws))["code"] == "invalid_json"
        body = {"user_id": RED_CALLER, "phone": phone(20), "call_id": "p1"}
        reply = await http.post("/api/calls", json=body, headers=AUTH)
        assert reply.status_code == 503
        assert reply.json()["error"] == "busy"
        assert reply.headers["Retry-After"] == "30"
        # Another user still has the gateway's last place; a third finds the gateway full.
        await send(other, call("o1", phone(30)))
        reply = await http.post("/api/calls", json={**body, "user_id": "5"}, headers=AUTH)
        assert (reply.status_code, reply.json()["error"]) == (503, "busy")
        assert "CALLGUARD_MAX_INFLIGHT" in reply.json()["message"]
        text = (await http.get("/metrics")).text
        assert metric(text, "callguard_calls_in_flight") == 3
        assert metric(text, 'callguard_calls_in_flight_peak{scope="all"}') == 3
        assert metric(text, 'callguard_calls_in_flight_peak{scope="user"}') == 2
        refused_ws = 'callguard_calls_refused_total{reason="busy",scope="user",source="ws"}'
        assert metric(text, refused_ws) == 12
        refused_api = 'callguard_calls_refused_total{reason="busy",scope="user",source="api"}'
        assert metric(text, refused_api) == 1
        refused_all = 'callguard_calls_refused_total{reason="busy",scope="all",source="api"}'
        assert metric(text, refused_all) == 1
        assert metric(text, 'callguard_frames_rejected_total{code="busy"}') == 12
        assert (await http.get("/healthz")).json()["calls_in_flight"] == 3
        crm.release()  # the admitted calls paint, and their places are free again
        painted = {(await recv(tab))["call_id"], (await recv(tab))["call_id"]}
        assert painted == {"c1", "c2"}
        assert (await recv(other))["call_id"] == "o1"
        await gateway.calls.idle()
        await send(tab, call("c20", phone(20)))
        assert (await recv(tab))["call_id"] == "c20"
        assert gateway.tabs.count == 3  # no tab was closed
