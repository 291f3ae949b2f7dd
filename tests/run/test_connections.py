"""Connection limits on a real gateway over raw sockets: head deadline, URL and header sizes,
keep-alive, the cap and its loopback reserve for the health check."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gateway.run.config import ConfigError, Settings
from gateway.run.connections import FD_RESERVE, RESERVED, Admission, ConnectionLimits, Guard
from gateway.run.metrics import Metrics
from gateway.run.refusals import Refusals
from gateway.tools.floods import idle_connections
from tests.support import gateway_settings, running_gateway
from tests.timing import timeout

UPGRADE = (
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, then read everything until the gateway closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    answer = b""
    try:
        async with asyncio.timeout(timeout()):
            while chunk := await reader.read(65536):
                answer += chunk
    finally:
        writer.close()
    return answer


async def refused(base: str) -> dict[str, float]:
    async with httpx.AsyncClient() as client:
        text = (await client.get(base + "/metrics")).text
    out = {}
    for line in text.splitlines():
        if line.startswith("callguard_connections_refused_total{"):
            name, value = line.rsplit(" ", 1)
            out[name.split('"')[1]] = float(value)
        elif line.startswith("callguard_connections_idle_closed_total "):
            out["idle"] = float(line.rsplit(" ", 1)[1])
    return out


async def healthy(base: str) -> bool:
    """Ask for /healthz until it answers 200: the gateway may not have seen a flood's
    connections go yet, and refuses the first asks."""
    async with asyncio.timeout(timeout()), httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(base + "/healthz")).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.01)


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


@pytest.fixture
def settings() -> Settings:
    return gateway_settings(header_timeout=0.5, keep_alive=1)


async def test_a_request_head_not_complete_in_time_gets_408_and_is_closed(
    settings: Settings,
) -> None:
    async with running_gateway(settings) as base:
        half = await exchange(
            port_of(base), b"GET /healthz HTTP/1.1\r\nHost: callguard\r\nX-Slow: "
        )
        silent = await exchange(port_of(base), b"")
        assert half.startswith(b"HTTP/1.1 408 ")
        assert half.endswith(b"CALLGUARD_HEADER_TIMEOUT)\n")
        assert silent == b""  # nothing was asked, nothing is answered: closed
        assert (await refused(base))["header_timeout"] == 2


async def test_a_kept_alive_connection_is_closed_when_idle_and_its_next_head_has_a_deadline(
    settings: Settings,
) -> None:
    async with running_gateway(settings) as base:
        idle = await exchange(port_of(base), b"GET /healthz HTTP/1.1\r\nHost: callguard\r\n\r\n")
        slow = await exchange(
            port_of(base),
            b"GET /healthz HTTP/1.1\r\nHost: callguard\r\n\r\nGET /healthz HTTP/1.1\r\nHost: c",
        )
        assert idle.startswith(b"HTTP/1.1 200 ")
        assert idle.count(b"HTTP/1.1") == 1
        assert slow.startswith(b"HTTP/1.1 200 ")
        assert b"HTTP/1.1 408 " in slow
        counts = await refused(base)
        assert (counts["idle"], counts["header_timeout"]) == (1, 1)


async def test_a_long_url_gets_414_and_large_headers_431(settings: Settings) -> None:
    async with running_gateway(settings) as base:
        port = port_of(base)
        long_url = await exchange(port, b"GET /healthz?" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n")
        many = b"".join(b"X-Header-%d: %s\r\n" % (i, b"v" * 1000) for i in range(20))
        large = await exchange(port, b"GET /healthz HTTP/1.1\r\n" + many + b"\r\n")
        endless = await exchange(port, b"GET /healthz HTTP/1.1\r\nX-Endless: " + b"v" * 40_000)
        ws_url = await exchange(port, b"GET /ws?token=" + b"a" * 9000 + b" HTTP/1.1\r\n" + UPGRADE)
        ws_line = await exchange(
            port, b"GET /ws HTTP/1.1\r\n" + UPGRADE + b"X-Big: " + b"v" * 10_000 + b"\r\n\r\n"
        )
        assert long_url.startswith(b"HTTP/1.1 414 ")
        assert ws_url.startswith(b"HTTP/1.1 414 ")
        assert large.startswith(b"HTTP/1.1 431 ")
        assert endless.startswith(b"HTTP/1.1 431 ")
        # Within CALLGUARD_MAX_HEADERS, but a line websockets cannot read: its own 431, sent.
        assert ws_line.startswith(b"HTTP/1.1 431 ")
        counts = await refused(base)
        assert (counts["url_too_long"], counts["headers_too_large"]) == (2, 3)


async def test_an_invalid_request_gets_400_and_is_counted(settings: Settings) -> None:
    async with running_gateway(settings) as base:
        answer = await exchange(port_of(base), b"NOT HTTP\x00\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert (await refused(base))["bad_request"] == 1


async def test_at_the_cap_loopback_may_still_ask_for_health_and_metrics_only() -> None:
    settings = gateway_settings(max_connections=20, header_timeout=60.0)
    async with running_gateway(settings) as base:
        port = port_of(base)
        async with idle_connections("127.0.0.1", port, 20) as held:
            health = await exchange(port, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
            tab = await exchange(port, b"GET /ws HTTP/1.1\r\n" + UPGRADE + b"\r\n")
            page = await exchange(port, b"GET /static/callguard.js HTTP/1.1\r\n\r\n")
            assert held.closed == 0
        assert health.startswith(b"HTTP/1.1 200 ")
        assert tab.startswith(b"HTTP/1.1 503 ")
        assert page.startswith(b"HTTP/1.1 503 ")
        assert b"CALLGUARD_MAX_CONNECTIONS" in page
        assert (await refused(base))["max_connections"] == 2


async def test_past_the_cap_and_the_reserve_a_connection_is_refused_at_once() -> None:
    settings = gateway_settings(max_connections=20, header_timeout=60.0)
    async with running_gateway(settings) as base:
        async with idle_connections("127.0.0.1", port_of(base), 35) as held:
            async with asyncio.timeout(timeout()):
                await held.wait_closed(7)  # 20 open, 8 reserved for loopback, 7 refused
            assert (held.opened, dict(held.statuses)) == (35, {503: 7})
        assert await healthy(base)
        assert (await refused(base))["max_connections"] >= 7


def test_the_connection_cap_defaults_to_what_the_open_files_limit_leaves() -> None:
    settings = gateway_settings()
    limits = ConnectionLimits.from_settings(settings, open_files=20_000)
    assert limits.max_connections == 20_000 - FD_RESERVE - RESERVED
    assert ConnectionLimits.from_settings(settings.but(max_connections=50)).max_connections == 50
    with pytest.raises(ConfigError, match=r"^CALLGUARD_MAX_CONNECTIONS: 5000 does not fit .*1024"):
        ConnectionLimits.from_settings(settings.but(max_connections=5000), open_files=1024)


def test_past_the_cap_only_loopback_gets_one_of_the_reserved_places() -> None:
    guard = Guard(ConnectionLimits(max_connections=2, reserved=1), Refusals(Metrics()))
    assert guard.admit("192.0.2.1") is Admission.OPEN
    guard.connections = {object(), object()}
    assert guard.admit("192.0.2.1") is Admission.REFUSED
    assert guard.admit("::1") is Admission.RESERVED
    assert guard.admit("127.0.0.1") is Admission.RESERVED
    guard.connections.add(object())
    assert guard.admit("127.0.0.1") is Admission.REFUSED
    assert guard.admit(None) is Admission.REFUSED
