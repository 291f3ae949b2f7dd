"""One write for an HTTP answer whose head and body are sent back to back.

uvicorn writes an answer's status line and headers when the app sends ``http.response.start``,
and its body at ``http.response.body``: two writes, two system calls, two segments the client
wakes up for. ``POST /api/calls`` (gateway/web/callapi.py) sends the two messages one after the
other with nothing awaited between, so :class:`HeadWithBody` holds the first write of its
request's cycle until the next one and writes both together. On this kind of virtual machine a
system call and a wake-up are dear: measured, the gateway made 4 writes a call where the bare push
server makes 3 (bench/throughput.py's load server, /proc/PID/io).

Only for that route: an app that sent its head and then waited (a stream) would have its head
held until its first body chunk.
"""

from __future__ import annotations

import asyncio
from typing import Any


class HeadWithBody:
    """A request cycle's transport that holds the answer's head until the next write (its body)
    or a close, then sends both together. An interim answer (``100 Continue``, which a client
    may wait for before it sends the body) goes out at once."""

    __slots__ = ("_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = b""  # b"": nothing written yet; None: passing through

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held == b"":  # the first write of the answer
            if bytes(data[9:10]) == b"1":  # "HTTP/1.1 100 Continue": the client waits for it
                self._transport.write(data)
            else:
                self._held = bytes(data)
        elif held is None:
            self._transport.write(data)
        else:
            self._held = None
            self._transport.write(held + bytes(data))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held:
            self._transport.write(held)

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, ...
        return getattr(self._transport, name)
