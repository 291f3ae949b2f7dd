"""SIGTERM on a real ``callguard serve`` process (issue 9 item 5): it stops accepting, finishes the
portal's queued events (for at most CALLGUARD_SHUTDOWN_DRAIN) and closes every tab with 1001.

The CRM is the fake portal, made to hang until the test releases it, so a paint is still under
way when the signal comes; nothing here measures time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.live.tokens import issue_token
from gateway.tools.fakeportal import FakePortal
from tests.process import ServeProcess
from tests.process import serving as process_serving
from tests.timing import timeout

SECRET = "shutdown-test-secret-0123456789abcdef"
WEBHOOK_TOKEN = "shutdown-webhook-token-0123456789"
RED_PHONE = "+7 (495) 123-45-67"
# uvicorn shuts down and then re-raises the signal, as a process ended by it would end.
SIGTERM_EXIT = (0, -signal.SIGTERM)
CALL_EVENTS = ["ONVOXIMPLANTCALLINIT", "ONVOXIMPLANTCALLSTART", "ONVOXIMPLANTCALLEND"]


@contextlib.asynccontextmanager
async def serving(fake: FakePortal, drain: float) -> AsyncIterator[ServeProcess]:
    env = {
        "CALLGUARD_SECRET": SECRET,
        "CALLGUARD_PORTAL_URL": fake.webhook_url,
        "CALLGUARD_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "CALLGUARD_RATE_BURST": "1000",
        "CALLGUARD_RATE_PER_SECOND": "1000",
        "CALLGUARD_LOOKUP_DEADLINE": "30",  # the hanging CRM, not a deadline, holds the paint
        "CALLGUARD_SHUTDOWN_DRAIN": str(drain),
    }
    async with process_serving(env) as gateway:
        try:
            yield gateway
        finally:
            fake.release()


async def ring_with_crm_hanging(fake: FakePortal, gateway: ServeProcess) -> None:
    """The portal rings user 7; the CRM lookup for the number hangs (it is under way)."""
    fake.hang("*", times=None)
    fake.subscribe(gateway.url + "/bitrix/events", WEBHOOK_TOKEN, CALL_EVENTS)
    fake.call_init("c1", RED_PHONE)
    fake.call_start("c1", 7)
    delivered = await fake.deliveries.wait(2, timeout())
    assert [d.status for d in delivered] == [200, 200]
    await fake.faults.requests_seen(1, timeout())


async def frames_until_closed(ws: ClientConnection) -> list[dict[str, object]]:
    frames = []
    async with asyncio.timeout(timeout(2)):
        with contextlib.suppress(ConnectionClosed):
            while True:
                frames.append(json.loads(await ws.recv()))
    return frames


async def tab(gateway: ServeProcess) -> ClientConnection:
    ws = await connect(
        gateway.url.replace("http", "ws") + "/ws?token=" + issue_token(SECRET, "7"),
        compression=None,
    )
    assert json.loads(await ws.recv())["type"] == "hello"
    return ws


async def test_sigterm_drains_the_portal_paint_then_closes_tabs_with_1001() -> None:
    async with FakePortal() as fake, serving(fake, drain=30.0) as gateway:
        ws = await tab(gateway)
        await ring_with_crm_hanging(fake, gateway)
        gateway.proc.send_signal(signal.SIGTERM)
        await gateway.refusing()  # stopped accepting, and still draining: the CRM hangs
        fake.release()  # the lookup fails now: the paint (colour none) is made and sent
        frames = await frames_until_closed(ws)
        assert [(f["type"], f["call_id"]) for f in frames] == [("paint", "c1")]
        assert ws.close_code == 1001
        assert await gateway.exited() in SIGTERM_EXIT
    assert "Traceback" not in gateway.stderr


async def test_the_drain_is_bounded_by_its_setting() -> None:
    async with FakePortal() as fake, serving(fake, drain=0.2) as gateway:
        ws = await tab(gateway)
        await ring_with_crm_hanging(fake, gateway)
        gateway.proc.send_signal(signal.SIGTERM)
        assert await frames_until_closed(ws) == []  # the CRM never answered: no paint
        assert ws.close_code == 1001
        assert await gateway.exited() in SIGTERM_EXIT
    assert "shutdown: 1 portal events or paints left after 0.2s" in gateway.stderr
    assert "Traceback" not in gateway.stderr
