"""A gateway with sign-in through Bitrix24 against the fake portal's OAuth, on loopback.

Shared by the flow tests (tests/web/test_signin.py) and the extension in Chromium
(tests/browser/test_extension.py)::

    async with signin_gateway(portal, state_dir) as base_url:   # portal.oauth knows the app
        ...
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.run.config import Settings
from gateway.tools.fakeportal import FakePortal
from tests.support import gateway_settings, running_gateway

CLIENT_ID = "local.6569ab1c2d3e4f.12345678"
CLIENT_SECRET = "fake-client-secret-0123456789abcdefghijklmn"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def signin_settings(
    portal: FakePortal, public_url: str, state_dir: Path | None, **changes: object
) -> Settings:
    return gateway_settings(
        portal_url=portal.webhook_url,
        public_url=public_url,
        oauth_client_id=CLIENT_ID,
        oauth_client_secret=CLIENT_SECRET,
        oauth_server=portal.url.rstrip("/"),
        state_dir=state_dir,
    ).but(**changes)


@contextlib.asynccontextmanager
async def signin_gateway(
    portal: FakePortal, state_dir: Path | None, **changes: object
) -> AsyncIterator[str]:
    """The gateway, its local application registered on ``portal`` with its callback URL."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    portal.oauth.register(CLIENT_ID, CLIENT_SECRET, f"{public}/auth/callback")
    settings = signin_settings(portal, public, state_dir, **changes)
    async with running_gateway(settings, port=port) as base_url:
        yield base_url
