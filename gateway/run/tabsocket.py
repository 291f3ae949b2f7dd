"""The websocket protocol of a tab, after its HTTP upgrade (:mod:`gateway.run.protocols` holds
the HTTP one): uvicorn's sans-I/O websockets protocol with the gateway's bounds.

:class:`TabSocketProtocol` bounds a websocket's unread output: uvicorn answers every ping with
a pong written straight to the transport, with no flow control, so a peer that pings and never
reads grew the server by hundreds of MB. Once the transport holds more than
``CALLGUARD_TAB_QUEUE_BYTES`` unread beyond its 64 KiB high-water mark (where a reading tab's
paints may wait), the websocket is closed with 1008: a close frame after the pongs, and the
connection reset :data:`LINGER` seconds later if the peer has not read it by then. A peer in
the close window after a refused token (4401) is reset at once: its close frame is queued.
A peer that pings faster than ``CALLGUARD_TAB_PING_RATE`` is closed the same way, before its
pings cost the loop (:meth:`TabSocketProtocol.handle_ping`).

A read is fed to websockets' parser :data:`FEED_BYTES` at a time, the next slice once the app
has taken the frames of the last (:meth:`TabSocketProtocol.data_received`).

A tab's first heartbeat ping comes at a random moment within ``CALLGUARD_HEARTBEAT``, not one
interval after it connected (:meth:`TabSocketProtocol.start_keepalive`).
"""

from __future__ import annotations

import random
import weakref
from typing import Any, cast

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import HeaderLineTooLong, RequestLineTooLong, TooManyHeaders
from websockets.http11 import Request
from websockets.server import ServerProtocol

from gateway.live.bucket import TokenBucket
from gateway.live.tabs import SEND_NOW
from gateway.run.protocols import LINGER, guard_of, peer_of

UNREAD_CLOSE = 1008
UNREAD_REASON = "unread output over the limit"
PING_REASON = "too many pings"
# Pings a peer may send at once (or the rate, if larger) before CALLGUARD_TAB_PING_RATE applies:
# a client library that pings on connect and every few seconds stays well inside it.
PING_BURST = 10
# Bytes of one read parsed per turn of the loop. uvloop reads up to 256 kB at once, and
# websockets parses all of it in the one callback: 3,000 small frames of a flooding tab took
# 45-90 ms (measured in bench/abuse.py call-flood-slow-crm), every other tab waiting. 16 kB is
# ~200 call frames, a few ms; a browser tab's frames are a few hundred bytes and never wait.
# Parsing the next slice only when the app has taken the last one's frames also keeps the
# backpressure of a tab over its call rate (gateway/live/socket.py) a slice deep, not a read.
FEED_BYTES = 16 * 1024


class TabSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websockets protocol, with a bound on the output its peer leaves
    unread, minus the handshake request and response it would keep for the connection's whole
    life (~1 kB per tab; a tab lives for hours)."""

    pings: TokenBucket | None = None  # made at the first ping: most peers (browsers) send none
    backlog = b""  # read but not yet parsed, behind the slice parsed last; reading paused
    feeding = False  # the backlog's next slice is scheduled

    def start_keepalive(self) -> None:
        """The first ping at a random moment within the interval; the next ones an interval apart.

        uvicorn pings a tab one interval after it connected. Tabs that connect together — all
        of them after a restart, a load test's — then ping together for as long as they live:
        5000 pings and pongs within the 2 s the tabs took to connect, every 20 s, the calls of
        those 2 s waiting behind them. Spread over the interval, the same pings are a steady
        trickle; no tab is pinged later than before. (It did not move the gateway's ceiling in
        bench/throughput.py, one run: the ledger and the CPU a call set that.)
        """
        if self.ping_interval is not None and self.ping_interval > 0:
            first = random.uniform(0.0, self.ping_interval)
            self.ping_timer = self.loop.call_later(first, self.send_keepalive_ping)

    def data_received(self, data: bytes) -> None:
        """Parse ``data``, or only its first :data:`FEED_BYTES` while the rest waits, reading
        paused, until the app has taken every frame parsed so far (:meth:`receive`). Data that
        still arrives (uvicorn resumes reading when its queue is empty) waits behind it."""
        if self.backlog:
            self.backlog += data
            self.transport.pause_reading()
            return
        self._feed(data)

    async def receive(self) -> ASGIReceiveEvent:
        message = await super().receive()
        if self.backlog:
            self.transport.pause_reading()  # uvicorn resumed it: its queue is empty, ours not
            if self.queue.empty():
                self._feed_soon()
        return message

    def _feed(self, data: bytes) -> None:
        if len(data) > FEED_BYTES:
            data, self.backlog = data[:FEED_BYTES], data[FEED_BYTES:]
            self.transport.pause_reading()
        self._parse(data)
        if self.backlog and self.queue.empty():  # the slice held no whole frame for the app
            self._feed_soon()

    def _feed_soon(self) -> None:
        if not self.feeding:
            self.feeding = True
            self.loop.call_soon(self._feed_backlog)

    def _feed_backlog(self) -> None:
        self.feeding = False
        data, self.backlog = self.backlog, b""
        if not data or self.disconnected or self.transport.is_closing():
            return  # the peer is gone or being closed: what it sent last is not read
        self._feed(data)
        if not self.backlog and not self.read_paused:  # uvicorn's own pause is its to lift
            self.transport.resume_reading()

    def _parse(self, data: bytes) -> None:
        super().data_received(data)
        transport = self.transport
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            # websockets refused the handshake (a header line over 8 kB, over 128 headers) and
            # wrote its answer. uvicorn from 0.55 sends it and closes; before, it sent nothing
            # and the client waited for ever. Either way it is counted here, once: the
            # transport is closed after this call, so no more data comes.
            if not transport.is_closing():
                transport.write(b"".join(self.conn.data_to_send()))
                transport.close()
            guard_of(self.config).refuse(handshake_reason(self.conn), peer_of(transport))
            return
        if transport.is_closing():
            return
        guard = guard_of(self.config)
        if transport.get_write_buffer_size() > guard.limits.unread_bytes:
            guard.refuse("unread_output", peer_of(transport))
            self._close_unread(UNREAD_REASON)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if not self.close_sent:  # websockets accepted it: the app's task starts next
            # Weak: the scope is the protocol's own, and a cycle would outlive the tab (gcpolicy).
            extensions = cast(dict[str, Any], self.scope["extensions"])
            extensions[SEND_NOW] = weakref.WeakMethod(self.send_now)

    def send_now(self, text: str) -> bool:
        """Write a text frame at once, as uvicorn's ``send`` does when nothing makes it wait;
        False (nothing written) when something would: writing paused because the peer reads
        slowly, the handshake not accepted yet, a close under way. The tab's sender then awaits
        ``send``, which waits, raises or refuses as uvicorn decides."""
        if (
            not self.handshake_complete
            or self.initial_response is not None
            or self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        self.conn.send_text(text.encode())
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True

    def handle_ping(self) -> None:
        """Answer a ping, unless the peer pings faster than ``CALLGUARD_TAB_PING_RATE``.

        A browser cannot send pings (the WebSocket API has none); a client library sends one
        every few seconds. Each ping is parsed and answered on the loop: measured, four sockets
        pinging as fast as they could took other users' paint p99 from 6 to 845 ms although
        the unread bound kept memory flat. Past the rate the peer is closed (1008) and no
        longer read; in the close window (our close frame sent, e.g. 4401) a ping gets no
        answer, and one past the rate resets the connection."""
        if self.transport.is_closing():  # closed for a flood already: count it once
            self.conn.data_to_send()
            return
        guard = guard_of(self.config)
        if self.pings is None:
            rate = guard.limits.ping_rate
            self.pings = TokenBucket(rate, max(PING_BURST, rate))
        if not self.pings.take(self.loop.time()):
            self.conn.data_to_send()  # the pong websockets prepared: not sent
            guard.refuse("ping_flood", peer_of(self.transport))
            self._close_unread(PING_REASON)
        elif self.close_sent:
            self.conn.data_to_send()  # closing: the peer is owed no pong
        else:
            super().handle_ping()

    def _close_unread(self, reason: str) -> None:
        if self.close_sent:  # our close frame is already queued behind what the peer ignores
            self.transport.abort()
            return
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": UNREAD_CLOSE, "reason": reason}
        )
        self.conn.send_close(UNREAD_CLOSE, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()  # reads no more; the buffer goes if the peer reads in time
        self.close_timer = self.loop.call_later(LINGER, self.transport.abort)

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            self.request = self.response = None  # type: ignore[assignment]
        elif message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            # A refused handshake (403, gateway/web/origins.py) is complete once its body is out;
            # uvicorn would otherwise log an ERROR "returned without completing handshake".
            self.handshake_complete = True


def handshake_reason(conn: ServerProtocol) -> str:
    """The refusal reason for a handshake websockets could not read."""
    if isinstance(conn.handshake_exc, RequestLineTooLong):
        return "url_too_long"
    if isinstance(conn.handshake_exc, HeaderLineTooLong | TooManyHeaders):
        return "headers_too_large"
    return "bad_request"
