"""Flood drivers: clients that abuse a gateway's connections, for tests and benchmarks.

Each talks to a real gateway over real sockets and reports what the gateway did to it; none
sleeps for luck or judges speed, so a caller bounds them (``asyncio.timeout``) and measures what
it wants around them::

    async with idle_connections("127.0.0.1", port, 20_000) as flood:   # the descriptor flood
        await flood.wait_closed(flood.opened - limit)                  # refused at once (503)
    async with partial_headers("127.0.0.1", port, 3_000) as flood:     # slowloris
        await flood.wait_closed(3_000)                                 # 408 after the timeout
    result = await ping_flood("127.0.0.1", port, f"/ws?token={token}") # pings, never reads

Connections are opened :data:`BATCH` at a time; a connection the operating system refuses (the
listen backlog, this process's own descriptor limit) counts in ``failed``, not ``opened``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

BATCH = 256  # connections opened at once
KEEP = 256  # bytes of each connection's answer kept (the status line is what matters)
PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: callguard\r\nX-Slow: "  # and never the rest
PING_BATCH = 64  # ping frames per send


@dataclass
class Held:
    """Connections a flood holds open, and what the gateway did to them while held."""

    opened: int = 0
    failed: int = 0  # not connected at all (refused by the operating system)
    closed: int = 0  # closed by the gateway (EOF or reset) while held
    statuses: Counter[int] = field(default_factory=Counter)  # HTTP answers, by status
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_closed(self, count: int) -> None:
        """Until the gateway has closed ``count`` of them (bound it with ``asyncio.timeout``)."""
        while self.closed < count:
            self._changed.clear()
            await self._changed.wait()

    def _saw(self, answer: bytes) -> None:
        self.closed += 1
        if answer.startswith(b"HTTP/1.1 ") and answer[9:12].isdigit():
            self.statuses[int(answer[9:12])] += 1
        self._changed.set()


@contextlib.asynccontextmanager
async def idle_connections(
    host: str, port: int, count: int, *, head: bytes = b""
) -> AsyncIterator[Held]:
    """Open ``count`` connections that send ``head`` (nothing by default) and then nothing more;
    yield while they are held; close what is left on the way out."""
    held = Held()
    writers: list[asyncio.StreamWriter] = []
    watchers: list[asyncio.Task[None]] = []

    async def one() -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            held.failed += 1
            return
        held.opened += 1
        writers.append(writer)
        if head:
            writer.write(head)
        watchers.append(asyncio.get_running_loop().create_task(_watch(reader, held)))

    try:
        for start in range(0, count, BATCH):
            await asyncio.gather(*(one() for _ in range(min(BATCH, count - start))))
        yield held
    finally:
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        for writer in writers:
            writer.close()


def partial_headers(
    host: str, port: int, count: int
) -> contextlib.AbstractAsyncContextManager[Held]:
    """Slowloris: ``count`` connections that each send half a request head and stop."""
    return idle_connections(host, port, count, head=PARTIAL_HEAD)


async def _watch(reader: asyncio.StreamReader, held: Held) -> None:
    answer = b""
    try:
        while chunk := await reader.read(65536):
            answer = (answer + chunk)[:KEEP]
    except OSError:  # reset by the gateway: closed all the same
        pass
    held._saw(answer)


@dataclass(frozen=True)
class PingFlood:
    handshake: int  # the upgrade's HTTP status (101: the websocket opened)
    sent: int  # ping frames sent before the gateway closed the connection (or all of them)
    closed: bool  # the gateway closed (reset) the connection during the flood


async def ping_flood(
    host: str,
    port: int,
    target: str,
    *,
    pings: int = 1_000_000,
    payload: int = 125,
    rcvbuf: int = 4096,
) -> PingFlood:
    """Open a websocket at ``target`` (``/ws?token=...``), then send up to ``pings`` ping
    frames of ``payload`` bytes and never read: every pong the gateway owes stays unread. A
    small ``rcvbuf`` makes this side's receive buffer, and so the pongs it absorbs, small."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (host, port))
        key = base64.b64encode(os.urandom(16))
        await loop.sock_sendall(
            sock,
            b"GET " + target.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\n\r\n",
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                break
            head += chunk
        status = int(head[9:12]) if head[9:12].isdigit() else 0
        if status != 101:
            return PingFlood(status, 0, closed=True)
        batch = ping_frame(payload) * PING_BATCH
        sent = 0
        while sent < pings:
            try:
                await loop.sock_sendall(sock, batch)
            except OSError:  # reset: the gateway let go of the connection
                return PingFlood(status, sent, closed=True)
            sent += PING_BATCH
        return PingFlood(status, sent, closed=False)
    finally:
        sock.close()


def ping_frame(payload: int) -> bytes:
    """A client's (masked) ping frame with ``payload`` bytes, at most 125 (a control frame)."""
    if not 0 <= payload <= 125:
        raise ValueError(f"a ping carries 0 to 125 bytes, not {payload}")
    mask = os.urandom(4)
    data = bytes(i & 0xFF for i in range(payload))
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return bytes([0x89, 0x80 | payload]) + mask + masked
