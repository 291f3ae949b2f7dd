"""HeadWithBody: a ``POST /api/calls`` answer's head waits for its body and goes out with it.

A unit test over a recording transport, and raw HTTP against a real gateway: answers on one
kept-alive connection, ``Expect: 100-continue``, a refused call: each whole, in order, none held
back (a read that waits for what was held would hang until the test's timeout).
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson

from gateway.run.coalesce import HeadWithBody
from gateway.run.config import Settings
from tests.support import gateway_settings, running_gateway
from tests.timing import timeout

API_KEY = "test-api-key-0123456789"


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def test_the_head_waits_for_the_body_then_writes_pass_through() -> None:
    transport = Recording()
    corked = HeadWithBody(transport)
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.writes == []
    corked.write(b'{"seq":111111}')  # a "1" where a status would be: a body all the same
    corked.write(b"more")
    assert transport.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"seq":111111}', b"more"]
    assert corked.is_closing() is False  # the rest is the transport's


def test_100_continue_is_not_held() -> None:
    transport = Recording()
    corked = HeadWithBody(transport)
    corked.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    corked.write(b"body")
    assert transport.writes[1:] == [b"HTTP/1.1 200 OK\r\n\r\nbody"]


def test_a_close_writes_what_was_held_first() -> None:
    transport = Recording()
    corked = HeadWithBody(transport)
    corked.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
    corked.close()
    assert (transport.writes, transport.closed) == (
        [b"HTTP/1.1 500 Internal Server Error\r\n\r\n"],
        True,
    )


def request(body: bytes, *extra: bytes) -> bytes:
    head = [
        b"POST /api/calls HTTP/1.1",
        b"Host: test",
        b"Authorization: Bearer " + API_KEY.encode(),
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(body),
        *extra,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n"


async def answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One whole HTTP answer: its status and body (by Content-Length)."""
    async with asyncio.timeout(timeout()):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            (int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length:")), 0
        )
        return status, await reader.readexactly(length)


async def test_answers_on_one_connection_come_whole_and_in_order() -> None:
    settings: Settings = gateway_settings(api_key=API_KEY)
    async with running_gateway(settings) as base:
        port = int(base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for n in range(3):
                body = orjson.dumps({"user_id": "7", "phone": "+79160000000", "call_id": f"k{n}"})
                writer.write(request(body) + body)
                status, got = await answer(reader)
                assert (status, orjson.loads(got)["call_id"]) == (200, f"k{n}")
            # A client that waits for 100 Continue before it sends the body.
            body = orjson.dumps({"user_id": "7", "phone": "+79160000000", "call_id": "x"})
            writer.write(request(body, b"Expect: 100-continue"))
            async with asyncio.timeout(timeout()):
                assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(body)
            assert (await answer(reader))[0] == 200
            # A refusal (a bad body) is whole too.
            writer.write(request(b"{") + b"{")
            status, got = await answer(reader)
            assert (status, orjson.loads(got)["error"]) == (422, "invalid_json")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
