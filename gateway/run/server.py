"""Run the gateway under uvicorn, tuned for thousands of mostly idle websockets.

httptools and uvloop. Websockets go through uvicorn's sans-I/O implementation of the
``websockets`` library (:class:`TabSocketProtocol`): ``ws="websockets"`` names the deprecated
legacy one, which warns on import and which uvicorn will point at the sans-I/O one. Per-message
deflate is off (payloads are ~200 bytes; measured, deflate costs ~37 kB more per idle tab).
Websocket pings every ``settings.heartbeat`` drop dead peers; proxy headers are on for PaaS
routers. Once started, :class:`gateway.run.gcpolicy.GcPolicy` keeps full collections short.
The protocols (:mod:`gateway.run.protocols`) enforce the connection limits of
:mod:`gateway.run.connections`: a cap on open connections, a deadline and size bounds for a
request's head, a bound on the output a websocket peer leaves unread.

Shutdown (SIGTERM, SIGINT) is graceful (:class:`GatewayServer`): stop listening, let the app drain
(``app.state.drain``: the portal's queued events, then every tab closed with 1001 so the snippet
reconnects at once, to a sibling process), wait a moment for the tabs' close handshakes, and only
then run uvicorn's own shutdown, which would close websockets with 1012 and drop what is queued.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
import uvloop
from starlette.applications import Starlette

from gateway.run.config import Settings
from gateway.run.connections import ConnectionLimits, GatewayConfig, Guard
from gateway.run.gcpolicy import GcPolicy
from gateway.run.metrics import Metrics
from gateway.run.protocols import TabHttpProtocol
from gateway.run.refusals import Refusals
from gateway.run.tabsocket import TabSocketProtocol

log = logging.getLogger("callguard.server")

WS_MAX_SIZE = 64 * 1024  # beyond settings.max_frame a frame gets an error; beyond this, 1009
TAB_CLOSE_WAIT = 1.0  # seconds for the tabs to answer our 1001 before uvicorn drops them


class GatewayServer(uvicorn.Server):
    """uvicorn's server, with the app's graceful part run first when it shuts down."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # stop accepting before anything else
            server.close()
        for sock in sockets or []:
            sock.close()
        drain: Callable[[], Awaitable[None]] | None = getattr(
            getattr(self.config.app, "state", None), "drain", None
        )
        if drain is not None and not self.force_exit:
            try:
                await drain()
            except Exception:  # uvicorn's shutdown below must still run
                log.exception("graceful shutdown failed; shutting down at once")
            await self._tabs_closed()
        await super().shutdown(sockets)

    async def _tabs_closed(self) -> None:
        """Wait (at most TAB_CLOSE_WAIT) until every websocket finished its close handshake."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TAB_CLOSE_WAIT
        while loop.time() < deadline and not self.force_exit:
            if not any(isinstance(c, TabSocketProtocol) for c in self.server_state.connections):
                return
            await asyncio.sleep(0.02)


class StartupError(RuntimeError):
    """The server did not start (a busy port, a failing lifespan); uvicorn logged the cause."""


def uvicorn_config(
    app: Starlette,
    settings: Settings,
    *,
    per_message_deflate: bool = False,
    log_config: dict[str, Any] | None = uvicorn.config.LOGGING_CONFIG,
) -> uvicorn.Config:
    """uvicorn's configuration for ``app``; raises ConfigError when the connection limits do
    not fit in the open-files limit (see :mod:`gateway.run.connections`)."""
    limits = ConnectionLimits.from_settings(settings)
    config = GatewayConfig(
        app,
        host=settings.host,
        port=settings.port,
        http=TabHttpProtocol,
        loop="uvloop",
        ws=TabSocketProtocol,
        ws_per_message_deflate=per_message_deflate,
        ws_max_size=max(WS_MAX_SIZE, settings.max_frame * 4),
        ws_ping_interval=settings.heartbeat,
        ws_ping_timeout=settings.heartbeat,
        proxy_headers=True,
        lifespan="on",
        access_log=False,
        log_level=settings.log_level,
        log_config=log_config,
        backlog=4096,
        timeout_keep_alive=settings.keep_alive,
        timeout_graceful_shutdown=5,
    )
    gateway = getattr(app.state, "gateway", None)  # the bare push server has none
    refusals = gateway.refusals if gateway is not None else Refusals(Metrics())
    config.guard = Guard(limits, refusals)
    return config


async def serve(
    server: uvicorn.Server,
    *,
    sockets: list[socket.socket] | None = None,
    tune_gc: bool = True,
    started: asyncio.Event | None = None,
) -> None:
    """Serve until uvicorn is told to exit (a signal, ``server.should_exit``, or cancellation:
    then it still shuts down through the lifespan). ``started`` is set once it listens."""
    serving = asyncio.get_running_loop().create_task(_serve(server, sockets))
    ticker: asyncio.Task[None] | None = None
    try:
        await wait_started(server, serving)
        if tune_gc:
            app = server.config.app
            assert isinstance(app, Starlette), "serve() runs apps made by create_app()"
            policy = GcPolicy()
            frozen = policy.after_startup()
            app.state.gc_policy = policy
            gateway = getattr(app.state, "gateway", None)  # None: the bare push server
            if gateway is not None:
                gateway.metrics.gc_frozen.set(frozen)
            ticker = asyncio.get_running_loop().create_task(policy.run())
        if started is not None:
            started.set()
        await asyncio.shield(serving)
    finally:
        if ticker is not None:
            ticker.cancel()
        if not serving.done():
            server.should_exit = True
            await serving


async def _serve(server: uvicorn.Server, sockets: list[socket.socket] | None) -> None:
    try:
        await server.serve(sockets=sockets)
    except SystemExit:  # uvicorn's way to say start-up failed; it logged why
        where = f"{server.config.host}:{server.config.port}"
        raise StartupError(f"could not start serving on {where} (see the error above)") from None


async def wait_started(server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    """Return once uvicorn listens (after the lifespan start-up); re-raise if it failed to."""
    while not server.started:
        if serving.done():
            serving.result()
            raise RuntimeError("uvicorn stopped before it started serving")
        await asyncio.sleep(0.01)


def run(
    app: Starlette,
    settings: Settings,
    *,
    tune_gc: bool = True,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Blocking: serve ``app`` on uvloop until interrupted; ``on_started`` once it listens."""
    raise_fd_limit()

    async def main() -> None:
        started = asyncio.Event()
        # gateway.run.logs configured logging for the whole process; uvicorn must not redo it.
        server = GatewayServer(uvicorn_config(app, settings, log_config=None))
        serving = asyncio.ensure_future(serve(server, tune_gc=tune_gc, started=started))
        if on_started is not None:
            waiting = asyncio.ensure_future(started.wait())
            await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if started.is_set():
                on_started()
        await serving

    uvloop.run(main())


def raise_fd_limit(wanted: int = 65536) -> int:
    """Lift the soft open-files limit towards ``wanted`` (one descriptor per tab)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft
