"""The load generator's lean tab, against a real gateway and a real websockets server."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from gateway.live.tokens import issue_token
from gateway.tools.tabclient import Tab, TabRefused
from tests.support import TEST_SECRET, running_gateway
from tests.timing import timeout


def ws(base: str, user: str, secret: str = TEST_SECRET) -> str:
    token = issue_token(secret, user, 3600)
    return "ws" + base.removeprefix("http") + f"/ws?token={token}"


async def test_a_tab_gets_its_hello_then_its_paints_and_closes_cleanly() -> None:
    frames: asyncio.Queue[bytes] = asyncio.Queue()
    async with running_gateway() as base, asyncio.timeout(timeout(4)):
        tab = await Tab.connect(ws(base, "7"), lambda _, frame: frames.put_nowait(frame))
        hello = orjson.loads(tab.opened.result())
        assert (hello["type"], hello["user_id"]) == ("hello", "7")
        call = {"type": "call", "call_id": "c1", "phone": "+7 495 100-00-01", "direction": "in"}
        tab.send(orjson.dumps(call).decode())
        paint = orjson.loads(await frames.get())
        assert (paint["type"], paint["call_id"]) == ("paint", "c1")
        tab.send('{"type":"ended","call_id":"c1"}')
        assert orjson.loads(await frames.get()) == {"type": "clear", "call_id": "c1"}
        await tab.close()
        assert tab.closed.done()
        assert tab.protocol.close_code == 1000  # the closing handshake, not a dropped socket


async def test_a_bad_token_is_a_refusal_that_names_the_close_code() -> None:
    async with running_gateway() as base, asyncio.timeout(timeout(4)):
        with pytest.raises(TabRefused, match="4401"):
            await Tab.connect(ws(base, "7", secret="not-the-gateway-secret-0123456789ab"), print)


async def test_a_refused_handshake_says_so() -> None:
    async with running_gateway() as base, asyncio.timeout(timeout(4)):
        nowhere = "ws" + base.removeprefix("http") + "/no-such-socket"
        with pytest.raises(TabRefused, match="handshake refused"):
            await Tab.connect(nowhere, print)


async def test_the_tab_answers_the_server_s_pings() -> None:
    """A gateway closes a tab that never answers its heartbeat: the tab must pong."""
    answered = asyncio.Event()

    async def handler(conn: ServerConnection) -> None:
        await conn.send('{"type":"hello"}')
        await (await conn.ping())  # resolves when the pong arrives
        answered.set()
        await conn.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server, asyncio.timeout(timeout(4)):
        port = server.sockets[0].getsockname()[1]
        tab = await Tab.connect(f"ws://127.0.0.1:{port}/", print)
        await answered.wait()
        await tab.close()
