"""The real gateway on loopback: uvicorn (httptools, websockets) and real websocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator

import httpx
import jwt
import orjson
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.crm.datafile import DataFileDirectory
from gateway.crm.dataset import parse_dataset
from gateway.live.calls import LATE_REASON
from gateway.run.config import Settings
from gateway.run.runtime import Gateway
from gateway.web.app import create_app
from gateway.web.callapi import MAX_BODY
from tests.live.conftest import (
    API_KEY,
    OWNER,
    RED_CALLER,
    RED_PHONE,
    HangingDirectory,
    token_for,
)
from tests.support import TEST_SECRET, gateway_settings, running_app, running_gateway
from tests.timing import UNIT, timeout


def ws_url(base: str, user: str | None = None, token: str | None = None) -> str:
    token = token if token is not None else token_for(user or RED_CALLER)
    return base.replace("http://", "ws://") + f"/ws?token={token}"


async def recv(ws: ClientConnection) -> dict[str, object]:
    async with asyncio.timeout(timeout()):
        frame = await ws.recv()
    doc = orjson.loads(frame)
    assert isinstance(doc, dict)
    return doc


async def send(ws: ClientConnection, doc: dict[str, object]) -> None:
    await ws.send(orjson.dumps(doc).decode())


async def closed_code(ws: ClientConnection) -> int:
    """Read (and drop) frames until the server closes; the close code."""
    async with asyncio.timeout(timeout()):
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.recv()
    assert ws.close_code is not None
    return ws.close_code


def call(call_id: str = "c1", phone: str = RED_PHONE) -> dict[str, object]:
    return {"type": "call", "call_id": call_id, "phone": phone, "direction": "in"}


@pytest_asyncio.fixture
async def base() -> AsyncIterator[str]:
    async with running_gateway(gateway_settings(api_key=API_KEY)) as url:
        yield url


@pytest.mark.parametrize(
    "token",
    [
        "",
        token_for(RED_CALLER)[:-3] + "abc",
        # Beyond the minute of clock skew the gateway allows.
        jwt.encode({"sub": "7", "exp": time.time() - 120}, TEST_SECRET, algorithm="HS256"),
        jwt.encode({"sub": "7", "exp": time.time() + 60}, None, algorithm="none"),
        jwt.encode({"sub": "07", "exp": time.time() + 60}, TEST_SECRET, algorithm="HS256"),
        jwt.encode({"sub": "7", "exp": 32_503_680_000}, TEST_SECRET, algorithm="HS256"),
        jwt.encode({"sub": "7", "exp": "32503680000"}, TEST_SECRET, algorithm="HS256"),
    ],
    ids=["missing", "bad-signature", "expired", "alg-none", "leading-zero", "year-3000", "str-exp"],
)
async def test_a_bad_token_closes_4401(base: str, token: str) -> None:
    async with connect(ws_url(base, token=token)) as ws:
        assert await closed_code(ws) == 4401


async def test_paints_reach_all_tabs_of_the_caller_and_nobody_else(base: str) -> None:
    async with (
        connect(ws_url(base, RED_CALLER)) as tab1,
        connect(ws_url(base, RED_CALLER)) as tab2,
        connect(ws_url(base, OWNER)) as other,
    ):
        for ws in (tab1, tab2, other):
            assert (await recv(ws))["type"] == "hello"
        await send(tab2, call())
        for ws in (tab1, tab2):
            paint = await recv(ws)
            assert (paint["type"], paint["colour"], paint["seq"]) == ("paint", "red", 1)
        await send(other, {"type": "call", "call_id": "c5", "phone": RED_PHONE})
        assert (await recv(other))["call_id"] == "c5"
        await send(tab1, {"type": "ended", "call_id": "c1"})
        for ws in (tab1, tab2):
            assert await recv(ws) == {"type": "clear", "call_id": "c1"}


async def test_a_reconnecting_tab_gets_the_current_paint(base: str) -> None:
    async with connect(ws_url(base)) as ws:
        await recv(ws)
        await send(ws, call())
        paint = await recv(ws)
    async with connect(ws_url(base)) as ws:
        assert (await recv(ws))["type"] == "hello"
        assert await recv(ws) == paint


async def test_bad_frames_get_errors_and_abuse_closes_1008(base: str) -> None:
    async with connect(ws_url(base), max_size=None) as ws:
        await recv(ws)
        for frame, code in (
            ("x" * 5000, "frame_too_large"),
            ("{nope", "invalid_json"),
            ('{"type":"dance"}', "unknown_type"),
            ('{"type":"call","call_id":"c1","phone":"abc"}', "invalid_phone"),
        ):
            await ws.send(frame)
            assert (await recv(ws))["code"] == code
        await send(ws, call())
        assert (await recv(ws))["type"] == "paint"  # still open and working
        for _ in range(5):  # three strikes above (an invalid phone is none), eight close
            await ws.send("{nope")
        assert await closed_code(ws) == 1008


async def test_invalid_phones_are_answered_but_are_no_abuse() -> None:
    settings = gateway_settings(tab_call_rate=1000.0)
    app = create_app(settings)
    gateway: Gateway = app.state.gateway
    async with running_app(app, settings) as url, connect(ws_url(url)) as ws:
        await recv(ws)
        for n in range(12):  # more than the abuse limit (8 bad frames): still open
            await send(ws, call(f"bad{n}", "abc"))
            assert (await recv(ws))["code"] == "invalid_phone"
        await send(ws, call())
        assert (await recv(ws))["type"] == "paint"
    metrics = gateway.metrics.render().decode()
    assert 'callguard_frames_rejected_total{code="invalid_phone"} 12.0' in metrics
    assert 'callguard_tab_closes_total{code="1008"}' not in metrics


async def test_call_frames_beyond_the_tab_rate_get_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="callguard.tabs")
    # One call frame per ~17 minutes: the second frame is refused however slow the machine.
    settings = gateway_settings(tab_call_rate=0.001)
    app = create_app(settings)
    gateway: Gateway = app.state.gateway
    async with (
        running_app(app, settings) as url,
        connect(ws_url(url)) as ws,
        connect(ws_url(url)) as other,
    ):
        await recv(ws)
        await recv(other)
        await send(ws, call("c1"))
        assert (await recv(ws))["type"] == "paint"
        assert (await recv(other))["type"] == "paint"
        for call_id in ("c2", "c2b"):
            await send(ws, call(call_id))
            refused = await recv(ws)
            assert (refused["type"], refused["code"]) == ("error", "rate_limited")
            assert "call frames per second" in str(refused["message"])
        await send(ws, {"type": "ended", "call_id": "c1"})  # other frames are not limited
        assert await recv(ws) == {"type": "clear", "call_id": "c1"}
        assert await recv(other) == {"type": "clear", "call_id": "c1"}
        await send(other, call("c3"))  # the other tab has a budget of its own
        assert (await recv(other))["call_id"] == "c3"
    metrics = gateway.metrics.render().decode()
    assert 'callguard_frames_rejected_total{code="rate_limited"} 2.0' in metrics
    [line] = [r.getMessage() for r in caplog.records if "call frames per second" in r.getMessage()]
    assert line.startswith("a tab of user 7 sends more than 0.001 call frames per second")


async def test_api_calls_over_http(base: str) -> None:
    async with connect(ws_url(base)) as ws, httpx.AsyncClient(base_url=base) as http:
        await recv(ws)
        body = {"user_id": RED_CALLER, "phone": RED_PHONE, "call_id": "p1"}
        assert (await http.post("/api/calls", json=body)).status_code == 401
        bad = await http.post(
            "/api/calls", json={**body, "phone": ""}, headers={"Authorization": f"Bearer {API_KEY}"}
        )
        assert bad.status_code == 422
        good = await http.post(
            "/api/calls", json=body, headers={"Authorization": f"Bearer {API_KEY}"}
        )
        assert good.json()["colour"] == "red"
        assert (await recv(ws))["call_id"] == "p1"
        assert (await http.get("/healthz")).json()["tabs"] == 1


async def test_an_oversized_api_body_is_refused_without_reading_it_all(base: str) -> None:
    # A chunked body that passes the bound and never ends: the answer must not wait for its end.
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        size = MAX_BODY + 1
        writer.write(
            b"POST /api/calls HTTP/1.1\r\nHost: gateway\r\n"
            + f"Authorization: Bearer {API_KEY}\r\n".encode()
            + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{size:x}\r\n".encode()
            + b" " * size
            + b"\r\n"
        )
        await writer.drain()
        async with asyncio.timeout(timeout()):
            status = await reader.readline()
        assert status.split()[1] == b"413", status
    finally:
        writer.close()


async def test_a_hanging_crm_fails_open_on_the_wire() -> None:
    directory = HangingDirectory()
    async with (
        running_gateway(gateway_settings(lookup_deadline=0.1), directory) as url,
        connect(ws_url(url)) as ws,
    ):
        await recv(ws)
        await send(ws, call())
        paint = await recv(ws)
        assert (paint["colour"], paint["text"]) == ("none", LATE_REASON)
        directory.release()


def slow_data() -> DataFileDirectory:
    """A company whose paints are large, so a tab that stops reading fills its buffers soon."""
    doc = {
        "users": [{"id": 6, "name": "Анна"}, {"id": 7, "name": "Пётр"}],
        "companies": [
            {
                "id": 1,
                "title": "Big " + "x" * 6000,
                "assigned_by": 6,
                "status": "IN_WORK",
                "phones": [RED_PHONE],
            }
        ],
    }
    return DataFileDirectory(parse_dataset(doc, "slow.json"))


async def test_a_slow_tab_does_not_delay_a_fast_one_and_is_closed_1013() -> None:
    settings = gateway_settings(heartbeat=4.0 * UNIT)
    app = create_app(settings, slow_data())
    gateway: Gateway = app.state.gateway
    async with running_app(app, settings) as url:
        slow_sock = socket.socket()
        slow_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow_sock.connect((url.split("//")[1].split(":")[0], int(url.rsplit(":", 1)[1])))
        slow_sock.setblocking(False)
        async with (
            connect(ws_url(url), sock=slow_sock, max_queue=1, max_size=None) as slow,
            connect(ws_url(url), max_size=None) as fast,
        ):
            await recv(slow)
            await recv(fast)
            seen: list[int] = []
            arrived = asyncio.Event()

            async def read_fast() -> None:
                async for frame in fast:
                    seen.append(int(orjson.loads(frame)["seq"]))
                    arrived.set()

            reader = asyncio.ensure_future(read_fast())

            def slow_blocked() -> bool:
                return any(
                    t.outbox.sending_since is not None and len(t.outbox) for t in gateway.tabs
                )

            sent = 0
            async with asyncio.timeout(timeout(2)):
                while not slow_blocked():  # the slow tab reads nothing from here on
                    sent += 1
                    await gateway.calls.start_call(RED_CALLER, "c1", RED_PHONE)
                    await asyncio.sleep(0)
                sent += 1
                await gateway.calls.start_call(RED_CALLER, "c1", RED_PHONE)
                while not seen or seen[-1] != sent:  # the fast tab has the newest paint
                    arrived.clear()
                    await arrived.wait()
                await gateway.tabs.wait_until(lambda tabs: tabs.count == 1)
            reader.cancel()
            paints = 0
            async with asyncio.timeout(timeout()):
                try:
                    async for _ in slow:
                        paints += 1
                except ConnectionClosed:
                    pass
            assert slow.close_code == 1013
            assert paints < sent  # it skipped to the newest paint instead of queueing them all
        assert 'callguard_tab_closes_total{code="1013"} 1.0' in gateway.metrics.render().decode()


async def test_a_dead_peer_is_dropped_by_the_heartbeat() -> None:
    settings = gateway_settings(heartbeat=0.3)
    app = create_app(settings)
    gateway: Gateway = app.state.gateway
    async with running_app(app, settings) as url:
        host, port = url.split("//")[1].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            (
                f"GET /ws?token={token_for(RED_CALLER)} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        async with asyncio.timeout(timeout()):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101")
            await gateway.tabs.wait_until(lambda tabs: tabs.count == 1)
            # From here on the peer answers nothing, not even the pings.
            await gateway.tabs.wait_until(lambda tabs: tabs.count == 0)
        writer.close()


async def test_running_gateway_builds_from_settings_alone() -> None:
    settings = Settings(secret=TEST_SECRET, host="127.0.0.1", port=0, demo=True)
    async with running_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/demo/api/users")).status_code == 200
        assert (await http.get("/healthz")).status_code == 200
