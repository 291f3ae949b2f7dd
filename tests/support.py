"""Run the real gateway on loopback for tests: uvicorn serving on a free port inside the test's
event loop. Other test packages import this (browser tests, portal integration)::

    async with running_gateway(settings) as base_url:      # "http://127.0.0.1:PORT"
        ...

``running_app`` serves an app the test built itself (to reach ``app.state.gateway``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from gateway.crm import Directory
from gateway.run.config import Settings
from gateway.run.server import GatewayServer, serve, uvicorn_config
from gateway.web.app import create_app
from tests.timing import timeout

TEST_SECRET = "test-secret-0123456789abcdef-0123456789"


def gateway_settings(**changes: object) -> Settings:
    """Settings for tests: a fixed secret, loopback, everything else at its default."""
    return Settings(secret=TEST_SECRET, host="127.0.0.1", port=0).but(**changes)


# The first name other test packages import; ``__test__`` stops pytest collecting it as a test.
test_settings = gateway_settings
setattr(gateway_settings, "__test__", False)  # noqa: B010 - a function attribute pytest reads


@contextlib.asynccontextmanager
async def running_app(
    app: Starlette, settings: Settings, port: int = 0, tune_gc: bool = False
) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (``port``, or a free one); yield its base URL; shut down cleanly.
    ``tune_gc``: with the GC policy, as ``callguard serve`` (it freezes this whole process)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    config = uvicorn_config(app, settings.but(host="127.0.0.1", port=port), log_config=None)
    started = asyncio.Event()
    server_task = asyncio.get_running_loop().create_task(
        serve(GatewayServer(config), sockets=[sock], tune_gc=tune_gc, started=started)
    )
    try:
        async with asyncio.timeout(timeout()):
            waiting = asyncio.ensure_future(started.wait())
            await asyncio.wait({waiting, server_task}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
        if server_task.done():
            server_task.result()
        yield f"http://127.0.0.1:{port}"
    finally:
        server_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            # A hang guard: the graceful shutdown may spend up to the drain on queued events.
            async with asyncio.timeout(timeout() + settings.shutdown_drain):
                await server_task
        sock.close()


@contextlib.asynccontextmanager
async def running_gateway(
    settings: Settings | None = None, directory: Directory | None = None, port: int = 0
) -> AsyncIterator[str]:
    """``create_app(settings, directory)`` served on loopback; yields ``http://127.0.0.1:PORT``.
    A fixed ``port`` is for apps that must know their own URL (``public_url``)."""
    settings = settings or gateway_settings()
    async with running_app(create_app(settings, directory), settings, port) as base_url:
        yield base_url
