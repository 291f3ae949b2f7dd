"""A load-test tab: one websocket client on websockets' sans-I/O protocol, nothing else.

The load generator shares the machine with the server it measures (2 cores), so what it spends
a frame is taken from the server, and its own delays are counted in every call->paint figure.
websockets' asyncio client wakes a reader task and passes each frame through a queue; for the
generator's thousands of tabs, which only note the paint's arrival and send one ``ended``, that
cost more than the protocol: at 1000 calls/s the generator took 22% of a core against the bare
server and 29% against the gateway (whose tabs also get a ``clear`` each call), bench/throughput.py.
This tab is an :class:`asyncio.Protocol` that feeds the same library's parser (handshake, frames,
pong to the server's pings, closing handshake) and hands each text frame to a callback, as the
gateway's own server side does (gateway/run/tabsocket.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

CLOSE_WAIT = 5.0  # seconds to wait for the server's close frame before dropping the connection


class TabRefused(Exception):
    """The server refused the websocket handshake, or closed before its first frame."""


OnText = Callable[["Tab", bytes], None]


class Tab(asyncio.Protocol):
    """One websocket tab. ``opened`` resolves with the server's first text frame (the gateway's
    ``hello``); every later text frame goes to ``on_text``."""

    def __init__(self, uri: str, on_text: OnText, deflate: bool = False) -> None:
        extensions = [ClientPerMessageDeflateFactory()] if deflate else None
        self.protocol = ClientProtocol(parse_uri(uri), extensions=extensions)
        self.on_text = on_text
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[bytes] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.first_ping: float | None = None  # the loop's time at the server's first ping

    @classmethod
    async def connect(cls, uri: str, on_text: OnText, deflate: bool = False) -> Tab:
        """Connect, shake hands and wait for the first frame; :class:`TabRefused` if refused."""
        target = parse_uri(uri)
        context = ssl.create_default_context() if target.secure else None
        loop = asyncio.get_running_loop()
        _, tab = await loop.create_connection(
            lambda: cls(uri, on_text, deflate), target.host, target.port, ssl=context
        )
        try:
            await tab.opened
        except BaseException:
            tab.abort()
            raise
        return tab

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                if self.protocol.handshake_exc is not None:
                    self._refused(f"handshake refused: {self.protocol.handshake_exc}")
            elif isinstance(event, Frame) and event.opcode is Opcode.PING:  # the parser pongs
                if self.first_ping is None:
                    self.first_ping = asyncio.get_running_loop().time()
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                text = bytes(event.data)
                if not self.opened.done():
                    self.opened.set_result(text)
                else:
                    self.on_text(self, text)
        self._flush()  # pongs to pings, the answer to a close

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        code = self.protocol.close_code
        self._refused(f"closed before the first frame (code {code})")
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, text: str) -> None:
        """Send a text frame now (dropped once the connection is closing)."""
        if self.transport is None or self.transport.is_closing():
            return
        self.protocol.send_text(text.encode())
        self._flush()

    async def close(self) -> None:
        """The closing handshake, as a browser tab's; the connection dropped if it lingers."""
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):  # already closing: nothing more to say
                self.protocol.send_close(1000)
                self._flush()
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), CLOSE_WAIT)
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _refused(self, message: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(TabRefused(message))

    def _flush(self) -> None:
        assert self.transport is not None
        for data in self.protocol.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():  # b"": the protocol half-closes
                self.transport.write_eof()
