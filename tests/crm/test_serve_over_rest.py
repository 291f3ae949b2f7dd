"""`callguard serve` with CALLGUARD_PORTAL_URL at the fake portal: tabs get paints from REST data."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator

import httpx
import pytest
import websockets

from gateway.live.tokens import issue_token
from gateway.tools.fakeportal import FakePortal
from tests.process import ServeProcess
from tests.timing import timeout

SECRET = "serve-over-rest-secret-0123456789abcdef"


@pytest.fixture
def serve(fake_portal: FakePortal) -> Iterator[str]:
    """A real `callguard serve` process reading the CRM through the fake portal's webhook URL."""
    gateway = ServeProcess(
        {
            "CALLGUARD_SECRET": SECRET,
            "CALLGUARD_PORTAL_URL": fake_portal.webhook_url,
            "CALLGUARD_RATE_BURST": "1000",
            "CALLGUARD_RATE_PER_SECOND": "1000",
        }
    )
    yield f"127.0.0.1:{gateway.port}"
    gateway.proc.send_signal(signal.SIGINT)
    _, err = gateway.proc.communicate(timeout=timeout(2))
    assert "Traceback" not in err
    code = fake_portal.webhook_url.rstrip("/").rsplit("/", 1)[-1]
    assert code not in err, "the webhook code leaked into the server's log"


async def wait_healthy(address: str) -> dict[str, object]:
    async with httpx.AsyncClient() as client:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout(4)
        while True:
            try:
                reply = await client.get(f"http://{address}/healthz", timeout=timeout())
                if reply.status_code == 200:
                    health: dict[str, object] = reply.json()
                    return health
            except httpx.TransportError:
                pass
            assert loop.time() < end, "callguard serve did not become healthy"
            await asyncio.sleep(0.05)


async def paint_for(address: str, user: str, call_id: str, phone: str) -> dict[str, object]:
    token = issue_token(SECRET, user, ttl=60)
    async with websockets.connect(f"ws://{address}/ws?token={token}") as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), timeout()))
        assert hello["type"] == "hello"
        await ws.send(
            json.dumps({"type": "call", "call_id": call_id, "phone": phone, "direction": "in"})
        )
        while True:
            message: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), timeout()))
            if message["type"] == "paint" and message["call_id"] == call_id:
                return message


async def test_serve_paints_tabs_from_the_portal_over_rest(
    serve: str, fake_portal: FakePortal
) -> None:
    health = await wait_healthy(serve)
    assert health["ok"] is True
    assert isinstance(health["directory"], dict)
    assert health["directory"]["source"] == "bitrix24"
    fake_portal.reset_counters()
    # ООО «Ромашка» is IN_WORK with user 6; its number typed the Russian way.
    paint = await paint_for(serve, "7", "c1", "8 (495) 123-45-67")
    assert (paint["colour"], paint["rule"], paint["background"]) == (
        "red",
        "foreign-client-in-work",
        "#d32f2f",
    )
    assert fake_portal.requests["batch"] == 2
    cold = fake_portal.total_requests
    # The same number from another manager's tab: decided again, but from the cache.
    again = await paint_for(serve, "9", "c2", "+7 495 123 45 67")
    assert again["colour"] == "red"
    assert fake_portal.total_requests == cold
    # A contact's number gives yellow for the contact's own manager's colleague in another company.
    yellow = await paint_for(serve, "6", "c3", "+7 903 765 43 21")
    assert yellow["colour"] == "yellow"
