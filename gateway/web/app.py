"""create_app(settings) -> Starlette: routes and lifespan wiring, nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

import gateway as package
from gateway.crm import Directory
from gateway.ledger.wiring import build_access, build_digest
from gateway.live.socket import tab_endpoint
from gateway.live.tabs import CLOSE_GOING_AWAY
from gateway.portal.wiring import build_intake
from gateway.run.config import Settings
from gateway.run.runtime import Gateway, build_gateway
from gateway.web.callapi import CallRoute, post_call
from gateway.web.demo import demo_routes
from gateway.web.headers import SecurityHeaders
from gateway.web.http import SnippetFiles, healthz, metrics, portal_events
from gateway.web.oauth import build_signin, signin_routes
from gateway.web.origins import Origins, default_origins
from gateway.web.report import report_csv, report_page

log = logging.getLogger("callguard.web")


def static_dir() -> Path:
    """The snippet and the demo page: ``gateway/static`` in an installed wheel (the build copies
    the top-level ``static/`` there), else the checkout's ``static/`` (an editable install)."""
    installed = Path(package.__file__).parent / "static"
    if (installed / "callguard.js").is_file():
        return installed
    return Path(package.__file__).parent.parent / "static"


STATIC_DIR = static_dir()

log = logging.getLogger("callguard.app")


class GatewayApp(Starlette):
    """Starlette, with the two hot paths taken before the middleware stack and the router:

    - ``/ws``: a tab's socket lives for hours, and each layer would hold a suspended frame per
      tab (~3 kB of the ~25 kB a tab costs at thousands of tabs);
    - ``POST /api/calls``: each layer costs every call (measured: the route through the stack
      was half the gateway's CPU at 1000 calls/s). A plain ASGI handler that answers every
      error itself and sets the one security header the middleware would.

    Every other path goes through Starlette as usual."""

    # The gateway, for the hot paths: ``app.state.gateway`` (kept for every other use) costs
    # each call ~1.3 µs, a failed attribute lookup that formats and drops an AttributeError
    # before Starlette's ``State.__getattr__`` runs (bench/call_instructions.py).
    gateway: Gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        path = scope.get("path")
        if kind == "http" and path == "/api/calls" and scope["method"] == "POST":
            scope["app"] = self
            await post_call(scope, receive, send)
            return
        if kind == "websocket" and path in ("/ws", scope.get("root_path", "") + "/ws"):
            scope["app"] = self
            await tab_endpoint(WebSocket(scope, receive, send))
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, directory: Directory | None = None) -> Starlette:
    """The gateway app. With ``directory=None`` it builds (and closes) its own from settings;
    a directory passed in stays the caller's to close. Raises ConfigError on bad settings."""
    gateway = build_gateway(settings, directory)
    intake, editable = build_intake(gateway)
    signin = build_signin(gateway)
    access = build_access(gateway, editable)
    digest = build_digest(gateway, access)  # None: CALLGUARD_DIGEST_AT unset

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        await intake.start()
        if digest is not None:
            digest.start()
        try:
            yield
        finally:
            if digest is not None:
                await digest.stop()
            await intake.stop()
            if signin is not None:
                await signin.close()
            await gateway.stop()

    async def drain() -> None:
        """Graceful shutdown, before the server drops connections (gateway/run/server.py)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.shutdown_drain
        drained = await intake.drain(settings.shutdown_drain)
        if gateway.shared is not None:  # sibling processes get the last paints
            # Within the drain's time, but a second at least: sending takes milliseconds.
            await gateway.shared.flush(max(1.0, deadline - loop.time()))
        log.info(
            "shutting down: portal events %s; closing %d tabs with 1001",
            "drained" if drained else "left undone",
            gateway.tabs.count,
        )
        gateway.tabs.close_all(CLOSE_GOING_AWAY, "server restarting: reconnect")

    routes: list[BaseRoute] = [
        # POST is taken before the router (GatewayApp); here other methods get their 405.
        Route("/api/calls", CallRoute(), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Mount("/static", SnippetFiles(directory=STATIC_DIR, check_dir=False)),
        Route("/bitrix/events", portal_events, methods=["POST"]),
        *signin_routes(signin),
        Route("/report", report_page, methods=["GET"]),
        Route("/report.csv", report_csv, methods=["GET"]),
    ]
    if settings.demo:
        routes.extend(demo_routes(STATIC_DIR))
    allowed = settings.allowed_origins
    if allowed is None:
        allowed = default_origins(settings.portal_url, settings.public_url)
    origins = Origins(allowed)
    app = GatewayApp(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders, frame_ancestors=origins.allowed)],
    )
    app.state.origins = origins
    app.state.gateway = gateway
    app.gateway = gateway
    app.state.intake = intake
    app.state.demo_statuses = editable
    app.state.drain = drain
    app.state.access = access
    app.state.digest = digest
    return app
