"""The fan-out's lean Redis connection (gateway/live/resp.py) against the real Redis at
127.0.0.1:6379, on both event loops (tests/live/conftest.py): what the URL asks is done, replies
stay with their batch, messages reach the callback in order, and a lost connection says so."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gateway.live.resp import KEEPALIVE_IDLE, KEEPALIVE_PROBES, RespConnection
from tests.redis_server import REDIS_URL, require_redis
from tests.timing import timeout

pytestmark = pytest.mark.redis


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    require_redis()
    redis: aioredis.Redis = aioredis.from_url(REDIS_URL)
    try:
        yield redis
    finally:
        await redis.aclose()


@pytest.fixture
def key() -> str:
    return f"callguard-test-{uuid.uuid4().hex[:8]}"


async def test_a_batch_gets_its_replies_in_order(client: aioredis.Redis, key: str) -> None:
    conn = await RespConnection.open(REDIS_URL)
    try:
        async with asyncio.timeout(timeout()):
            replies = await conn.execute(
                [("HSET", key, "f", "v"), ("HGET", key, "f"), ("DEL", key), ("PING",)]
            )
        assert replies == [1, b"v", 1, b"PONG"]
    finally:
        conn.close()


async def test_the_urls_database_and_name_are_used(client: aioredis.Redis, key: str) -> None:
    conn = await RespConnection.open(REDIS_URL.rsplit("/", 1)[0] + "/5", name="cg-test-" + key)
    other: aioredis.Redis = aioredis.from_url(REDIS_URL.rsplit("/", 1)[0] + "/5")
    try:
        async with asyncio.timeout(timeout()):
            await conn.execute([("SET", key, "in five", "EX", 60)])
            names = [c["name"] for c in await client.client_list()]
            assert await other.get(key) == b"in five"
            assert await client.get(key) is None  # database 0 has no such key
        assert "cg-test-" + key in names
    finally:
        conn.close()
        await other.delete(key)
        await other.aclose()


async def test_a_user_and_password_in_the_url_authenticate(
    client: aioredis.Redis, key: str
) -> None:
    await client.acl_setuser(
        key, enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all"]
    )
    try:
        conn = await RespConnection.open(f"redis://{key}:s3cret@127.0.0.1:6379/0")
        async with asyncio.timeout(timeout()):
            assert await conn.execute([("ACL", "WHOAMI")]) == [key.encode()]
        conn.close()
        with pytest.raises(ResponseError, match="WRONGPASS"):
            async with asyncio.timeout(timeout()):
                await RespConnection.open(f"redis://{key}:wrong@127.0.0.1:6379/0")
    finally:
        await client.acl_deluser(key)


async def test_an_error_reply_raises_and_the_connection_goes_on(
    client: aioredis.Redis, key: str
) -> None:
    conn = await RespConnection.open(REDIS_URL)
    try:
        async with asyncio.timeout(timeout()):
            await client.set(key, "a string")
            with pytest.raises(ResponseError, match="WRONGTYPE"):
                await conn.execute([("HSET", key, "f", "v"), ("PING",)])
            assert await conn.execute([("GET", key)]) == [b"a string"]
    finally:
        conn.close()
        await client.delete(key)


async def test_a_batch_given_up_on_leaves_its_replies_behind(key: str) -> None:
    """A caller's timeout ends the wait, not the reply: the next batch must not take it."""
    require_redis()
    conn = await RespConnection.open(REDIS_URL)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await conn.execute([("BLPOP", key, "0.3")])  # answers nil after 0.3 s
        async with asyncio.timeout(timeout()):
            assert await conn.execute([("ECHO", "mine")]) == [b"mine"]
    finally:
        conn.close()


async def test_messages_reach_the_callback_in_order(client: aioredis.Redis, key: str) -> None:
    conn = await RespConnection.open(REDIS_URL)
    got: list[bytes] = []
    all_in = asyncio.Event()

    def arrived(data: bytes) -> None:
        got.append(data)
        if len(got) == 500:
            all_in.set()

    try:
        async with asyncio.timeout(timeout()):
            await conn.subscribe(key, arrived)
            async with client.pipeline(transaction=False) as pipe:
                for n in range(500):
                    pipe.publish(key, str(n))
                    pipe.publish(key + "-other", "not ours")
                await pipe.execute()
            await all_in.wait()
        assert got == [str(n).encode() for n in range(500)]
    finally:
        conn.close()


async def test_a_lost_connection_is_said_and_fails_what_waits(
    client: aioredis.Redis, key: str
) -> None:
    conn = await RespConnection.open(REDIS_URL, name="cg-test-" + key)
    try:
        waiting = asyncio.ensure_future(conn.execute([("BLPOP", key, "0")]))  # waits for ever
        async with asyncio.timeout(timeout()):
            (ours,) = [c for c in await client.client_list() if c["name"] == "cg-test-" + key]
            await client.client_kill_filter(_id=ours["id"])
            await conn.lost
            with pytest.raises(RedisConnectionError, match=r"closed by Redis|lost"):
                await waiting
        with pytest.raises(RedisConnectionError):
            await conn.execute([("PING",)])
    finally:
        conn.close()


async def test_nothing_listening_is_a_connection_error() -> None:
    from tests.live.test_fanout_redis import closed_port_url

    with pytest.raises(RedisConnectionError, match="cannot connect to Redis"):
        async with asyncio.timeout(timeout()):
            await RespConnection.open(closed_port_url())


@contextlib.asynccontextmanager
async def own_redis(tmp_path: Path, *options: str) -> AsyncIterator[None]:
    """A redis-server of this test alone (no TCP port unless ``options`` give one), stopped
    afterwards; ready once it answers on its unix socket."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    sock = tmp_path / "redis.sock"
    server = await asyncio.create_subprocess_exec(
        "redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "",
        "--appendonly", "no", "--dir", str(tmp_path), *options,
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    probe: aioredis.Redis = aioredis.from_url(f"unix://{sock}")
    try:
        async with asyncio.timeout(timeout()):
            while True:
                with contextlib.suppress(RedisConnectionError, FileNotFoundError):
                    if await probe.ping():
                        break
                await asyncio.sleep(0.02)  # the server gives no event: asked until it answers
        yield
    finally:
        await probe.aclose()
        server.terminate()
        await server.wait()


async def test_a_unix_socket_url_with_a_database(tmp_path: Path) -> None:
    async with own_redis(tmp_path):
        sock = tmp_path / "redis.sock"
        conn = await RespConnection.open(f"unix://{sock}?db=3")
        check: aioredis.Redis = aioredis.from_url(f"unix://{sock}?db=3")
        try:
            async with asyncio.timeout(timeout()):
                await conn.execute([("SET", "k", "over the socket")])
                assert await check.get("k") == b"over the socket"
        finally:
            conn.close()
            await check.aclose()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_a_rediss_url_verifies_the_server(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    tls = ["--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    async with own_redis(
        tmp_path, *tls, "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"
    ):
        base = f"rediss://127.0.0.1:{port}/0"
        async with asyncio.timeout(timeout()):
            trusted = await RespConnection.open(f"{base}?ssl_ca_certs={cert}")
            assert await trusted.execute([("PING",)]) == [b"PONG"]
            trusted.close()
            with pytest.raises(RedisConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                await RespConnection.open(base)  # the system's CAs do not know this one
            unverified = await RespConnection.open(f"{base}?ssl_cert_reqs=none")
            assert await unverified.execute([("PING",)]) == [b"PONG"]
            unverified.close()


async def test_a_tcp_connection_probes_a_silent_peer() -> None:
    """A subscriber may hear nothing for hours: TCP keep-alive finds a Redis host that vanished
    without closing. Read off the socket itself (uvloop's stands in for one as well)."""
    require_redis()
    conn = await RespConnection.open(REDIS_URL)
    try:
        assert conn._transport is not None
        sock = conn._transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == KEEPALIVE_IDLE
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == KEEPALIVE_PROBES
    finally:
        conn.close()
