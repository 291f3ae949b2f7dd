"""uvicorn's HTTP protocol, with the gateway's connection limits and without what
a websocket, once upgraded, need not keep (limits: :mod:`gateway.run.connections`).

:class:`TabHttpProtocol` refuses a connection past ``CALLGUARD_MAX_CONNECTIONS`` with 503 at
once, closes one whose request head is not complete within ``CALLGUARD_HEADER_TIMEOUT`` (408
if it sent part of one), answers a URL over ``CALLGUARD_MAX_URL`` with 414 and headers over
``CALLGUARD_MAX_HEADERS`` with 431. A refused request's answer is followed by a lingering close:
the gateway stops writing, reads and drops what the client is still sending for up to
:data:`LINGER` seconds, then closes. Closing at once with unread input would reset the
connection and could destroy the answer before the client reads it.

The websocket protocol that follows an upgrade is in :mod:`gateway.run.tabsocket`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.run.coalesce import HeadWithBody
from gateway.run.connections import (
    RESERVED_PATHS,
    Admission,
    ConnectionLimits,
    Guard,
)
from gateway.run.metrics import Metrics
from gateway.run.refusals import Refusals

CALLS_PATH = "/api/calls"  # its answer goes out in one write (gateway/run/coalesce.py)
LINGER = 2.0  # seconds a refused request's client may still send before the connection closes

ANSWERS = {  # status -> body of a refusal the gateway writes itself, before any app runs
    400: b"bad request\n",
    408: b"request head not complete in time (CALLGUARD_HEADER_TIMEOUT)\n",
    414: b"URL too long (CALLGUARD_MAX_URL)\n",
    431: b"request headers too large (CALLGUARD_MAX_HEADERS)\n",
    503: b"too many connections (CALLGUARD_MAX_CONNECTIONS); retry later\n",
}


def guard_of(config: Any) -> Guard:
    """The guard of a :class:`GatewayConfig`; a configuration built elsewhere gets one that
    only counts (a cap as large as a process may hold)."""
    guard: Guard | None = getattr(config, "guard", None)
    if guard is None:
        guard = Guard(ConnectionLimits(max_connections=1 << 30), Refusals(Metrics()))
        config.guard = guard
    return guard


def answer(status: int, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    body = ANSWERS[status]
    head = [STATUS_LINE[status]]
    for name, value in default_headers:
        head += [name, b": ", value, b"\r\n"]
    head.append(b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n")
    if status == 503:
        head.append(b"retry-after: 1\r\n")
    head += [b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body]
    return b"".join(head)


class _Refused(Exception):
    """Raised in a parser callback to stop parsing; :attr:`TabHttpProtocol.refusal` says why."""


class TabHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, with the connection limits, which lets go of itself once a
    connection becomes a websocket.

    After the upgrade the HTTP protocol object is done, but it sits in reference cycles (its
    parser calls back into it, its flow control holds the transport). A cycle is reclaimed only
    by the cyclic GC; the GC policy freezes what lived through one of its ticks, so the cycle of
    every tab whose handshake spanned a tick stayed frozen for good (measured: 17 objects, ~3 kB
    per tab opened), which a full collection then had to reclaim by stopping the loop for
    hundreds of milliseconds. Breaking the cycles here lets reference counting free it at once."""

    guard: Guard
    refusal: tuple[int, str] | None = None  # (status, reason) once refused: input is dropped
    reserved = False  # admitted past the cap: /healthz and /metrics only
    started = False  # its first request has begun (new connections wait their turn for that)
    in_head = True  # a request's head has begun (or the connection is new) and is not complete
    head_bytes = 0  # bytes received while in the head
    header_bytes = 0  # bytes of the current request's headers, as parsed
    deadline: asyncio.TimerHandle | None = None  # CALLGUARD_HEADER_TIMEOUT
    linger: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.guard = guard = guard_of(self.config)
        guard.connections = self.connections
        peer = peer_of(transport)
        admission = guard.admit(peer)
        if admission is Admission.REFUSED:
            # At once and cheaply: no parser, no timer; a flood must not cost more than this.
            self.transport = transport
            self.refusal = (503, "max_connections")
            guard.refuse("max_connections", peer)
            transport.write(answer(503, self.server_state.default_headers))
            transport.close()
            return
        self.reserved = admission is Admission.RESERVED
        super().connection_made(transport)
        self.deadline = self.loop.call_later(guard.limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refusal is not None:
            return  # answered: dropping what the client still sends until the linger ends
        if not self.started:  # a new connection: a few start per turn (gateway/run/turns.py)
            openings = self.guard.openings
            if not openings.admit(self.loop):
                self.transport.pause_reading()
                openings.wait(self.loop, lambda: self._start(data))
                return
            self.started = True
        self._received(data)

    def _start(self, data: bytes) -> None:
        if self.refusal is not None or self.transport.is_closing():
            return  # timed out or gone while it waited
        self.started = True
        self.transport.resume_reading()
        self._received(data)

    def _received(self, data: bytes) -> None:
        # uvicorn's, but a request that crosses a limit is answered here, once, and an invalid
        # one too: uvicorn logged a warning for each, which a flood turns into a flood of lines.
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            status, reason = self.refusal or (400, "bad_request")
            self._answer(status, reason)
            return
        if self.in_head:
            self.head_bytes += len(data)
            if self.head_bytes > self.guard.limits.head_bytes:  # a header that never ends
                self._answer(431, "headers_too_large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head = True
        self.head_bytes = self.header_bytes = 0
        if self.deadline is None:  # the next request on a kept-alive connection
            timeout = self.guard.limits.header_timeout
            self.deadline = self.loop.call_later(timeout, self._head_timed_out)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.guard.limits.max_url:
            self._refuse(414, "url_too_long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4  # ": " and the line end
        if self.header_bytes > self.guard.limits.max_headers:
            self._refuse(431, "headers_too_large")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        if self.reserved and not self._health_check():
            self._refuse(503, "max_connections")
        super().on_headers_complete()
        scope = self.scope
        if scope.get("path") == CALLS_PATH and scope["method"] == "POST" and self.cycle is not None:
            self.cycle.transport = HeadWithBody(self.transport)  # type: ignore[assignment]

    def handle_websocket_upgrade(self) -> None:
        self._stop_timers()
        super().handle_websocket_upgrade()
        self.parser = self.flow = self.transport = None  # type: ignore[assignment]
        self.cycle = self.scope = None  # type: ignore[assignment]
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None

    def timeout_keep_alive_handler(self) -> None:
        if not self.transport.is_closing():
            self.guard.refusals.metrics.connections_idle_closed.inc()
        super().timeout_keep_alive_handler()

    def _health_check(self) -> bool:
        path = httptools.parse_url(self.url).path
        return (
            self.parser.get_method() == b"GET"
            and path in RESERVED_PATHS
            and not self.parser.should_upgrade()
        )

    def _refuse(self, status: int, reason: str) -> None:
        self.refusal = (status, reason)
        raise _Refused(reason)

    def _head_timed_out(self) -> None:
        self.deadline = None
        if self.transport.is_closing() or self.refusal is not None:
            return
        if self.head_bytes == 0:
            # Nothing was asked (a browser's preconnect, an idle flood): nothing to answer.
            self.refusal = (408, "header_timeout")
            self.guard.refuse("header_timeout", peer_of(self.transport))
            self.transport.close()
            return
        self._answer(408, "header_timeout")

    def _answer(self, status: int, reason: str) -> None:
        """Answer a refused request and close, lingering (see the module's docstring)."""
        self.refusal = (status, reason)
        self._stop_timers()
        self._unset_keepalive_if_required()
        self.guard.refuse(reason, peer_of(self.transport))
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an earlier request's answer is being written: no room
            return
        self.transport.write(answer(status, self.server_state.default_headers))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.linger = self.loop.call_later(LINGER, self.transport.close)

    def _stop_timers(self) -> None:
        for timer in (self.deadline, self.linger):
            if timer is not None:
                timer.cancel()
        self.deadline = self.linger = None


def peer_of(transport: asyncio.BaseTransport | None) -> str | None:
    """The peer's IP address (the transport's, not X-Forwarded-For: this is who holds the
    descriptor), for the refusal log and the loopback reserve."""
    if transport is None:
        return None
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None
