"""The load generator's POST client, against small real servers on loopback: kept-alive
connections reused, a connection the server closed while idle replaced, ``Connection: close``
honoured, and an answer that is not HTTP refused with a clear error."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.tools.posting import Poster, PostError
from tests.timing import timeout

Handler = Callable[[bytes, int], bytes]  # (request body, request number on its connection)


@contextlib.asynccontextmanager
async def server(
    answer: Handler, close_after: int = 0, ended: list[int] | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    """An HTTP server answering ``answer(body, n)``; yields its URL and the requests seen per
    connection. ``close_after``: close a connection after that many answers (0: never);
    ``ended`` gets the number of each connection the client closed."""
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(0)
        me = len(seen) - 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                seen[me] += 1
                writer.write(answer(body, seen[me]))
                await writer.drain()
                if close_after and seen[me] >= close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            if ended is not None:
                ended.append(me)
        finally:
            writer.close()

    listening = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/api/calls", seen
    finally:
        listening.close()


def ok(body: bytes, n: int, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%b\r\n%b" % (len(body), extra, body)


async def test_posts_share_kept_alive_connections() -> None:
    async with server(ok) as (url, seen):
        poster = Poster(url, {"Authorization": "Bearer k"}, connections=2)
        async with asyncio.timeout(timeout()):
            answers = await asyncio.gather(*(poster.post(b'{"n":%d}' % i) for i in range(20)))
        await poster.close()
    assert answers == [(200, b'{"n":%d}' % i) for i in range(20)]
    assert len(seen) <= 2
    assert sum(seen) == 20


async def test_connections_opened_ahead_carry_the_posts() -> None:
    async with server(ok) as (url, seen):
        poster = Poster(url, {}, connections=3)
        async with asyncio.timeout(timeout()):
            await poster.open(3)
            answers = await asyncio.gather(*(poster.post(b"%d" % i) for i in range(9)))
        await poster.close()
    assert answers == [(200, b"%d" % i) for i in range(9)]
    assert (len(seen), sum(seen)) == (3, 9)


async def test_connections_idle_too_long_are_closed_before_the_server_would() -> None:
    """The gateway closes a connection that sent no request within its header timeout, and
    logs it: the generator closes its idle ones first, the oldest, keeping the one in use."""
    ended: list[int] = []
    async with server(ok, ended=ended) as (url, seen):
        poster = Poster(url, {}, connections=3, idle_close=0.05)
        async with asyncio.timeout(timeout()):
            await poster.open(3)
            await asyncio.sleep(0.1)  # the three have now been idle past idle_close
            assert await poster.post(b"x") == (200, b"x")
            while len(ended) < 2:  # noqa: ASYNC110 -- the server's handlers give no event
                await asyncio.sleep(0.01)
            assert await poster.post(b"y") == (200, b"y")  # on the connection kept
        await poster.close()
    assert sorted(seen) == [0, 0, 2]
    assert seen[ended[0]] == seen[ended[1]] == 0


async def test_a_connection_closed_while_idle_is_replaced() -> None:
    async with server(ok, close_after=1) as (url, seen):
        poster = Poster(url, {}, connections=1)
        async with asyncio.timeout(timeout()):
            for i in range(3):
                assert await poster.post(b"%d" % i) == (200, b"%d" % i)
        await poster.close()
    assert seen == [1, 1, 1]


async def test_connection_close_is_honoured() -> None:
    async with server(lambda body, n: ok(body, n, b"Connection: close\r\n"), 1) as (url, seen):
        poster = Poster(url, {}, connections=1)
        async with asyncio.timeout(timeout()):
            for _ in range(2):
                assert await poster.post(b"x") == (200, b"x")
        await poster.close()
    assert seen == [1, 1]


async def test_an_answer_that_is_not_http_is_a_clear_error() -> None:
    async with server(lambda body, n: b"SSH-2.0-OpenSSH\r\n\r\n") as (url, _):
        poster = Poster(url, {}, connections=1)
        with pytest.raises(PostError, match="not an HTTP answer"):
            async with asyncio.timeout(timeout()):
                await poster.post(b"x")
        await poster.close()


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        Poster("ws://127.0.0.1:1/x", {})
