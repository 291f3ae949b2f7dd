"""``POST`` for the load generator: HTTP/1.1 over a few kept-alive connections, nothing else.

The generator shares the machine with the server it measures (2 cores: one each), so its own
CPU a call is part of what the figures show. aiohttp's client, built for everything HTTP can
be, took 64% of a core at 500 calls/s against 5000 tabs; this one only writes a request and
reads an answer with a ``Content-Length`` (the gateway's and the bare server's answers).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from urllib.parse import urlsplit

IDLE_CLOSE = 4.0  # seconds a kept-alive connection may sit idle before it is closed


class PostError(Exception):
    """The answer was not HTTP, or the connection ended before it was whole."""


class Poster:
    """POST bodies to one URL over at most ``connections`` kept-alive connections."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        connections: int = 16,
        idle_close: float = IDLE_CLOSE,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        lines = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += ["Content-Type: application/json"]
        self._head = "\r\n".join(lines).encode("latin-1") + b"\r\nContent-Length: "
        # Idle connections and since when, newest last. The newest is taken: at a steady rate a
        # few connections carry every call. Taken in turn instead (all 16), the cross-process
        # p99 was no better and the servers' CPU a call higher, in two paired runs of
        # bench/cross_process.py (2.19 and 2.85x the single process against 1.80 and 2.17x;
        # 716 and 798 µs against 582 and 733). The oldest are closed once idle IDLE_CLOSE
        # seconds (see post()).
        self._idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = deque()
        self._slots = asyncio.Semaphore(connections)
        self.idle_close = idle_close

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """The answer's status and body."""
        async with self._slots:
            reused = bool(self._idle)
            conn = self._idle.pop()[:2] if reused else await self._open()
            try:
                status, answer, keep = await self._exchange(conn, body)
            except (PostError, ConnectionError):
                conn[1].close()
                if not reused:
                    raise
                # A kept-alive connection the server closed while it was idle: once more, anew.
                conn = await self._open()
                status, answer, keep = await self._exchange(conn, body)
            now = time.monotonic()
            if keep:
                self._idle.append((*conn, now))
            else:
                conn[1].close()
            # Before the server closes them, and logs each as a fault: a connection that never
            # sent a request is closed after CALLGUARD_HEADER_TIMEOUT (10 s), one idle after a
            # request after CALLGUARD_KEEP_ALIVE (5 s).
            while self._idle and now - self._idle[0][2] > self.idle_close:
                self._idle.popleft()[1].close()
            return status, answer

    async def open(self, count: int) -> None:
        """Open ``count`` connections now, before they are needed: a burst that opened them on
        demand would time their handshakes as calls (measured at 19,500 tabs: the first 0.3 s
        of calls waited for 64 connects on the generator's busy loop)."""
        opened = await asyncio.gather(*(self._open() for _ in range(count)))
        now = time.monotonic()
        self._idle.extend((reader, writer, now) for reader, writer in opened)

    async def close(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()
        self._idle.clear()

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = ssl.create_default_context() if self.tls else None
        return await asyncio.open_connection(self.host, self.port, ssl=context)

    async def _exchange(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], body: bytes
    ) -> tuple[int, bytes, bool]:
        """Status, body, and whether the connection may carry the next request."""
        reader, writer = conn
        writer.write(b"%b%d\r\n\r\n%b" % (self._head, len(body), body))
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as err:
            raise PostError("the connection closed before an answer") from err
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError) as err:
            raise PostError(f"not an HTTP answer: {lines[0][:60]!r}") from err
        length, keep = 0, True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and b"close" in value.lower():
                keep = False
        try:
            return status, await reader.readexactly(length), keep
        except asyncio.IncompleteReadError as err:
            raise PostError("the connection closed in the middle of an answer") from err
