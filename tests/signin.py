"""A gateway with sign-in through Bitrix24 against the fake portal's OAuth, on loopback.

Shared by the flow tests (tests/web/test_signin.py) and the extension in Chromium
(tests/browser/test_extension.py)::

    async with signin_gateway(portal, database_file) as base_url:   # portal.oauth knows the app
        ...

``database_file`` is an SQLite file (the pinned portal account outlives the gateway) or None
(a database in the gateway's memory).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.run.config import Settings
from gateway.store.database import Database
from gateway.store.portal_pin import PortalPin
from gateway.tools.fakeportal import FakePortal
from tests.support import gateway_settings, running_gateway

CLIENT_ID = "local.6569ab1c2d3e4f.12345678"
CLIENT_SECRET = "fake-client-secret-0123456789abcdefghijklmn"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def signin_settings(
    portal: FakePortal, public_url: str, database: Path | None, **changes: object
) -> Settings:
    if database is not None:
        changes = {"database_url": f"sqlite:///{database}", **changes}
    return gateway_settings(
        portal_url=portal.webhook_url,
        public_url=public_url,
        oauth_client_id=CLIENT_ID,
        oauth_client_secret=CLIENT_SECRET,
        oauth_server=portal.url.rstrip("/"),
    ).but(**changes)


@contextlib.asynccontextmanager
async def signin_gateway(
    portal: FakePortal, database: Path | None, **changes: object
) -> AsyncIterator[str]:
    """The gateway, its local application registered on ``portal`` with its callback URL."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    portal.oauth.register(CLIENT_ID, CLIENT_SECRET, f"{public}/auth/callback")
    settings = signin_settings(portal, public, database, **changes)
    async with running_gateway(settings, port=port) as base_url:
        yield base_url


async def pinned_in(database: Path, member_id: str | None = None) -> str | None:
    """The member_id pinned in the SQLite file ``database``; with ``member_id``, pin it first
    (as an earlier sign-in to another portal account would have)."""
    db = Database(f"sqlite:///{database}")
    await db.open()
    try:
        if member_id is not None:
            await PortalPin(db).pin(member_id, "elsewhere.bitrix24.ru")
        return await PortalPin(db).get()
    finally:
        await db.close()
