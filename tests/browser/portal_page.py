"""Pages at the portal's origin for the extension test: a copy of the demo popup page, served
by a loopback server posing as the portal's pages (the fake portal serves REST and OAuth).

The page gets its users from ``/demo/api/users`` as on the gateway, and no token (``/demo/api/
token`` is 404 here): the snippet that colours its popup can only be the extension's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.crm.dataset import load_dataset
from gateway.web.app import STATIC_DIR
from gateway.web.demo import list_users


@contextlib.asynccontextmanager
async def portal_pages(host: str) -> AsyncIterator[str]:
    """Serve the demo page at ``http://host:PORT/demo/``; yield ``http://host:PORT``."""
    users = list_users(load_dataset())

    async def api_users(request: web.Request) -> web.Response:
        return web.json_response({"users": users, "numbers": [], "companies": [], "statuses": []})

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "demo" / "index.html")

    app = web.Application()
    app.router.add_get("/demo/api/users", api_users)
    app.router.add_get("/demo/", index)
    app.router.add_static("/demo/", STATIC_DIR / "demo")  # demo.js, demo.css beside the page
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
