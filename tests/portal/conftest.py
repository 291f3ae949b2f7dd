"""Fixtures for the portal-integration tests: Redis, fresh data files, the settings they share."""

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import websockets
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection

from gateway.crm import Directory
from gateway.crm.build import build_directory
from gateway.live.tokens import issue_token
from gateway.portal.events import HANDLED_EVENTS
from gateway.portal.intake import EventIntake
from gateway.run.config import Settings
from gateway.tools.fakeportal import FakePortal
from gateway.web.app import create_app
from tests.redis_server import REDIS_URL, require_redis
from tests.support import TEST_SECRET, running_app
from tests.timing import timeout


@pytest.fixture
def redis_url() -> str:
    require_redis()
    return REDIS_URL


@pytest.fixture
def store_key() -> str:
    """A Redis key of this test's own, so runs never see each other's locks."""
    return f"callguard:test:{uuid.uuid4().hex}"


WEBHOOK_TOKEN = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas"


def portal_settings(**changes: object) -> Settings:
    """Test settings with the outgoing webhook's token set (pass webhook_token=None to unset)."""
    base = Settings(secret=TEST_SECRET, host="127.0.0.1", port=0, webhook_token=WEBHOOK_TOKEN)
    return base.but(**changes)


class Tab:
    """One browser tab: a real websocket to the gateway, read message by message."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket

    async def next(self, kind: str | None = None) -> dict[str, Any]:
        """The next message (of type ``kind``, skipping others), or fail after a timeout."""
        async with asyncio.timeout(timeout()):
            while True:
                message: dict[str, Any] = json.loads(await self.socket.recv())
                if kind is None or message["type"] == kind:
                    return message


@contextlib.asynccontextmanager
async def open_tab(base_url: str, user_id: str) -> AsyncIterator[Tab]:
    url = base_url.replace("http://", "ws://") + "/ws?token=" + issue_token(TEST_SECRET, user_id)
    async with websockets.connect(url, compression=None) as socket:
        tab = Tab(socket)
        assert (await tab.next("hello"))["user_id"] == user_id
        yield tab


@dataclass
class Running:
    url: str
    app: Starlette

    @property
    def portal(self) -> EventIntake:
        portal: EventIntake = self.app.state.intake
        return portal

    @property
    def events_url(self) -> str:
        return self.url + "/bitrix/events"

    async def idle(self) -> None:
        async with asyncio.timeout(timeout()):
            await self.portal.idle()


@contextlib.asynccontextmanager
async def gateway_running(
    settings: Settings, directory: Directory | None = None
) -> AsyncIterator[Running]:
    app = create_app(settings, directory)
    async with running_app(app, settings) as url:
        yield Running(url, app)


@pytest.fixture
async def fake() -> AsyncIterator[FakePortal]:
    async with FakePortal() as portal:
        yield portal


ALL_EVENTS = sorted(HANDLED_EVENTS)


def rest_settings(portal: FakePortal, **changes: object) -> Settings:
    """A gateway on the fake portal's REST API; its client-side rate limit opened up."""
    return portal_settings(
        portal_url=portal.webhook_url, rate_burst=100_000, rate_per_second=10_000.0, **changes
    )


@contextlib.asynccontextmanager
async def rest_gateway(portal: FakePortal, **changes: object) -> AsyncIterator[Running]:
    """A gateway over ``portal``, subscribed to all its events as the outgoing webhook."""
    settings = rest_settings(portal, **changes)
    directory = build_directory(settings)
    try:
        async with gateway_running(settings, directory) as gw:
            portal.subscribe(gw.events_url, WEBHOOK_TOKEN, ALL_EVENTS)
            try:
                yield gw
            finally:
                portal.events.unsubscribe(gw.events_url)
    finally:
        await directory.close()


async def settle(fake: FakePortal, gw: Running, count: int) -> None:
    """Wait until ``count`` events in all were delivered (each answered 200) and handled."""
    delivered = await fake.deliveries.wait(count, timeout())
    assert [d.status for d in delivered] == [200] * len(delivered), [d.event for d in delivered]
    await gw.idle()
