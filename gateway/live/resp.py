"""A lean Redis connection for the fan-out's two hot paths: a pipeline written and its replies
awaited, and a subscription whose messages reach a callback as they are parsed.

Why not redis-py here, when the rest of the gateway uses it: measured on a 2-core VM, its
asyncio ``PubSub.get_message`` spent 108 µs of CPU per message arriving alone and a pipeline of
HSET, PUBLISH and EXPIRE 167 µs, against 32 µs per message for this module's protocol (the
loop's wake-up and one read: the floor) and one write per batch. A cross-process call pays for
two pipelines and four messages, so those layers were most of what a second process cost. The
parsing is hiredis, redis-py's own C parser, and the URL is read by redis-py's ``parse_url``, so
what ``CALLGUARD_REDIS_URL`` accepts is unchanged: ``redis://``, ``rediss://`` and ``unix://``,
with a user, a password and a database number.

Errors are redis-py's exception types, so callers handle one family: ``ConnectionError`` when
the connection is lost or cannot be made, ``ResponseError`` for an error reply. Waits are
bounded by the caller (``asyncio.timeout``), and so is reconnecting (:class:`Backoff`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

Command = Sequence[str | bytes | int | float]

KEEPALIVE_IDLE = 15  # seconds of silence before the first probe
KEEPALIVE_INTERVAL = 5  # seconds between probes
KEEPALIVE_PROBES = 3  # unanswered probes before the connection is given up
OnMessage = Callable[[bytes], None]


class RespConnection(asyncio.Protocol):
    """One connection: either a command connection (:meth:`execute`) or, once
    :meth:`subscribe` was called, a subscriber whose messages go to ``on_message``."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._transport: asyncio.Transport | None = None
        # Each write's futures, in order: a reply resolves the oldest pending one.
        self._waiting: deque[tuple[asyncio.Future[list[Any]], list[Any], int]] = deque()
        self._on_message: OnMessage | None = None
        self._channel = b""
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reason = ""

    # -- opening and closing -------------------------------------------------------------------

    @classmethod
    async def open(cls, url: str, name: str = "") -> RespConnection:
        """Connect, authenticate and select the database of ``url``, naming the connection
        ``name`` (what ``CLIENT LIST`` shows an operator). Callers bound the wait with
        ``asyncio.timeout``; a connection cut short is closed."""
        options = parse_url(url)
        loop = asyncio.get_running_loop()
        try:
            if "path" in options:
                _, conn = await loop.create_unix_connection(cls, options["path"])
            else:
                tls = _tls(options) if url.startswith("rediss:") else None
                host, port = options.get("host", "localhost"), options.get("port", 6379)
                _, conn = await loop.create_connection(cls, host, port, ssl=tls)
        except TimeoutError:
            raise
        except OSError as err:
            raise RedisConnectionError(f"cannot connect to Redis: {err}") from err
        setup: list[Command] = []
        if options.get("password") is not None:
            user = options.get("username")
            password = options["password"]
            setup.append(["AUTH", user, password] if user else ["AUTH", password])
        if options.get("db"):
            setup.append(["SELECT", int(options["db"])])
        if name:
            setup.append(["CLIENT", "SETNAME", name])
        try:
            if setup:
                await conn.execute(setup)
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)
        _keep_alive(transport.get_extra_info("socket"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self.reason = f"connection to Redis lost: {exc}" if exc else "connection closed by Redis"
        while self._waiting:
            future, _, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(RedisConnectionError(self.reason))
        if not self.lost.done():
            self.lost.set_result(None)

    # -- commands --------------------------------------------------------------------------------

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        """Write ``commands`` at once and return their replies; the first error reply raises
        ``ResponseError`` once every reply has arrived. Callers bound the wait with
        ``asyncio.timeout``: a batch given up on still takes its replies off the connection, so
        the next batch gets its own."""
        if self._transport is None or self._transport.is_closing():
            raise RedisConnectionError(self.reason or "not connected to Redis")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append((future, [], len(commands)))
        # hiredis's stub types the argument as a 1-tuple; it takes any number of parts.
        packed = b"".join(hiredis.pack_command(tuple(c)) for c in commands)  # type: ignore[arg-type]
        self._transport.write(packed)
        replies = await future
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise ResponseError(str(reply))
        return replies

    # -- subscribing -----------------------------------------------------------------------------

    async def subscribe(self, channel: str, on_message: OnMessage) -> None:
        """Subscribe to ``channel`` and return once Redis confirmed it; from then on each
        message's data is handed to ``on_message`` as soon as it is read, in channel order."""
        # Set first: a message may follow the confirmation in the same read.
        self._channel, self._on_message = channel.encode(), on_message
        (confirmed,) = await self.execute([["SUBSCRIBE", channel]])
        if not (isinstance(confirmed, list) and confirmed[:1] == [b"subscribe"]):
            raise ResponseError(f"unexpected answer to SUBSCRIBE: {confirmed!r}")

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            on_message = self._on_message
            if (
                on_message is not None
                and type(reply) is list
                and len(reply) == 3
                and reply[0] == b"message"
                and reply[1] == self._channel
            ):
                on_message(reply[2])
                continue
            self._reply(reply)

    def _reply(self, reply: Any) -> None:
        if not self._waiting:
            return  # nobody asked: a protocol slip we must not crash on
        future, replies, count = self._waiting[0]
        replies.append(reply)
        if len(replies) == count:
            self._waiting.popleft()
            if not future.done():  # not timed out meanwhile
                future.set_result(replies)


def _keep_alive(sock: socket.socket | None) -> None:
    """TCP keep-alive on a connection to Redis: the subscriber may hear nothing for hours, and a
    Redis host that vanished without closing (power, a partition) would otherwise go unnoticed
    for as long. With these settings a dead peer ends the connection within ~30 s."""
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: no TCP_KEEP* here
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)


def _tls(options: Mapping[str, object]) -> ssl.SSLContext:
    """The TLS context of a ``rediss://`` URL: verified by default, as redis-py does; the URL's
    ``ssl_cert_reqs=none`` and ``ssl_ca_certs=`` are honoured."""
    ca_file = options.get("ssl_ca_certs")
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if str(options.get("ssl_cert_reqs", "required")).lower() == "none":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Backoff:
    """The wait before the next attempt to reconnect: doubling from ``first`` to ``longest``,
    back to ``first`` once connected."""

    def __init__(self, first: float = 0.05, longest: float = 5.0) -> None:
        self.first, self.longest = first, longest
        self.wait = first

    def next(self) -> float:
        wait, self.wait = self.wait, min(self.wait * 2, self.longest)
        return wait

    def reset(self) -> None:
        self.wait = self.first
