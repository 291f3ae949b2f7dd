"""Several gateways through the real Redis at 127.0.0.1:6379: paints, clears and current paints
cross processes; an unreachable Redis leaves local delivery working and logs one line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from gateway.live import wire
from gateway.live.fanout import LocalFanout, frame_type
from gateway.live.redisfanout import RedisFanout
from gateway.live.tabs import Tabs
from gateway.run.config import ConfigError, Settings
from gateway.run.runtime import Gateway, build_gateway
from gateway.store.database import Database
from gateway.store.ledger import Ledger
from gateway.web.app import create_app
from rules.model import Decision
from tests.cutter import cutter
from tests.ledger.test_writer import WIDE
from tests.live.conftest import API_KEY, OWNER, RED_CALLER, RED_PHONE
from tests.live.test_loopback import call, recv, send, ws_url
from tests.redis_server import require_redis
from tests.support import TEST_SECRET, gateway_settings, running_app
from tests.timing import timeout

REDIS = "redis://127.0.0.1:6379/0"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Node:
    url: str
    gateway: Gateway

    @property
    def fanout(self) -> RedisFanout:
        assert self.gateway.shared is not None
        return self.gateway.shared

    async def post_call(self, user: str, call_id: str, phone: str = RED_PHONE) -> None:
        body = {"user_id": user, "phone": phone, "call_id": call_id}
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.post("/api/calls", json=body, headers=AUTH)
        assert response.status_code == 200, response.text

    @contextlib.asynccontextmanager
    async def tab(self, user: str) -> AsyncIterator[ClientConnection]:
        async with connect(ws_url(self.url, user)) as ws:
            assert (await recv(ws))["type"] == "hello"
            yield ws


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key and channel namespace of this test alone, removed afterwards."""
    require_redis()
    name = f"callguard-test-{uuid.uuid4().hex}:"
    yield name
    client: aioredis.Redis = aioredis.from_url(REDIS)
    async for key in client.scan_iter(match=name + "*"):
        await client.delete(key)
    await client.aclose()


@contextlib.asynccontextmanager
async def node(settings: Settings) -> AsyncIterator[Node]:
    app = create_app(settings)
    gateway: Gateway = app.state.gateway
    async with running_app(app, settings) as url:
        shared = gateway.shared
        if shared is not None and settings.redis_url == REDIS:
            async with asyncio.timeout(timeout()):
                await shared.wait_until(lambda fanout: fanout.connected)
        yield Node(url, gateway)


@contextlib.asynccontextmanager
async def cluster(prefix: str, count: int = 2) -> AsyncIterator[list[Node]]:
    """``count`` gateways in this process, sharing one Redis namespace, all subscribed."""
    settings = gateway_settings(api_key=API_KEY, redis_url=REDIS, redis_prefix=prefix)
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(node(settings)) for _ in range(count)]


@pytest.mark.redis
async def test_a_call_on_one_gateway_paints_the_users_tabs_on_every_gateway(prefix: str) -> None:
    async with (
        cluster(prefix) as (a, b),
        a.tab(RED_CALLER) as caller_a,
        b.tab(RED_CALLER) as caller_b,
        a.tab(OWNER) as owner_a,
        b.tab(OWNER) as owner_b,
    ):
        await a.post_call(RED_CALLER, "c1")
        for ws in (caller_a, caller_b):
            paint = await recv(ws)
            assert (paint["type"], paint["call_id"], paint["colour"], paint["seq"]) == (
                "paint",
                "c1",
                "red",
                1,
            )
        # Users stay apart across processes: the owner's first frame is their own call...
        await b.post_call(OWNER, "c5")
        for ws in (owner_a, owner_b):
            paint = await recv(ws)
            assert (paint["type"], paint["call_id"]) == ("paint", "c5")
        # ...and the caller's next frame is the clear of c1, not the owner's c5.
        await send(caller_b, {"type": "ended", "call_id": "c1"})
        for ws in (caller_a, caller_b):
            assert await recv(ws) == {"type": "clear", "call_id": "c1"}


@pytest.mark.redis
async def test_ended_on_one_gateway_clears_on_the_other_and_ends_the_call_there(
    prefix: str,
) -> None:
    async with cluster(prefix) as (a, b), a.tab(RED_CALLER) as tab_a, b.tab(RED_CALLER) as tab_b:
        await send(tab_a, call("c1"))  # the call lives in A's pipeline
        for ws in (tab_a, tab_b):
            assert (await recv(ws))["call_id"] == "c1"
        await send(tab_b, {"type": "ended", "call_id": "c1"})  # B never saw the call itself
        for ws in (tab_a, tab_b):
            assert await recv(ws) == {"type": "clear", "call_id": "c1"}
        assert (a.gateway.calls.active, b.gateway.calls.active) == (0, 0)
        # New tabs on either side start clean: their first frame after hello is the next call.
        async with a.tab(RED_CALLER) as fresh_a, b.tab(RED_CALLER) as fresh_b:
            await send(fresh_a, call("c2"))
            for ws in (fresh_a, fresh_b):
                assert (await recv(ws))["call_id"] == "c2"


@pytest.mark.redis
async def test_the_tabs_gateway_records_the_end_and_latency_of_a_call_the_other_painted(
    prefix: str, tmp_path: Path
) -> None:
    """One ledger database for both: the call enters A, which writes its row; the tab is on B,
    which writes what the tab says (the latency, the end). The row ends up with both. Under
    load B's marks often come before A's row; that ordering, forced, is
    tests/ledger/test_writer.py's (gateway/ledger/held.py)."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    settings = gateway_settings(
        api_key=API_KEY, redis_url=REDIS, redis_prefix=prefix, database_url=url
    )
    async with node(settings) as a, node(settings) as b, b.tab(RED_CALLER) as tab:
        await a.post_call(RED_CALLER, "c1")
        paint = await recv(tab)
        applied = {"type": "applied", "call_id": "c1", "seq": paint["seq"], "latency_ms": 85}
        await send(tab, applied)
        await send(tab, {"type": "ended", "call_id": "c1"})
        assert await recv(tab) == {"type": "clear", "call_id": "c1"}
        ledger = Ledger(Database(url))
        await ledger.database.open()
        try:
            async with asyncio.timeout(timeout(4)):  # A's batch, then B's next try
                while True:
                    rows = await ledger.rows(*WIDE)
                    if rows and rows[0].latency_ms is not None and rows[0].ended_at is not None:
                        break
                    await asyncio.sleep(0.05)
        finally:
            await ledger.database.close()
    (row,) = rows
    assert (row.caller_id, row.call_id, row.colour, row.latency_ms) == (RED_CALLER, "c1", "red", 85)


@pytest.mark.redis
async def test_a_tab_that_connects_later_gets_the_current_paint_from_any_gateway(
    prefix: str,
) -> None:
    async with cluster(prefix) as (a, b), b.tab(RED_CALLER) as watching:
        await a.post_call(RED_CALLER, "c1")
        paint = await recv(watching)  # B has seen it: a tab opening there now must get it
        async with b.tab(RED_CALLER) as late:
            assert await recv(late) == paint
        # A gateway started after the paint reads it from Redis.
        settings = gateway_settings(api_key=API_KEY, redis_url=REDIS, redis_prefix=prefix)
        async with node(settings) as c, c.tab(RED_CALLER) as later:
            assert await recv(later) == paint
            async with c.tab(OWNER) as other:  # nobody else's
                await send(other, call("own"))
                assert (await recv(other))["call_id"] == "own"
            assert await a.gateway.calls.end_call(RED_CALLER, "c1")
            assert await recv(later) == {"type": "clear", "call_id": "c1"}
            assert await recv(watching) == {"type": "clear", "call_id": "c1"}


@pytest.mark.redis
async def test_another_namespace_hears_nothing(prefix: str) -> None:
    async with (
        cluster(prefix, count=1) as (a,),
        cluster(prefix + "other:", count=1) as (b,),
        a.tab(RED_CALLER) as tab_a,
        b.tab(RED_CALLER) as tab_b,
    ):
        await a.post_call(RED_CALLER, "mine")
        await b.post_call(RED_CALLER, "theirs")
        assert (await recv(tab_a))["call_id"] == "mine"
        assert (await recv(tab_b))["call_id"] == "theirs"


def closed_port_url() -> str:
    """A Redis URL where nothing listens: a port we bound and released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


async def test_an_unreachable_redis_leaves_local_tabs_painted_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="callguard.fanout")
    settings = gateway_settings(api_key=API_KEY, redis_url=closed_port_url())
    async with node(settings) as a, a.tab(RED_CALLER) as tab:
        for n in range(3):
            await a.post_call(RED_CALLER, f"c{n}")
            assert (await recv(tab))["call_id"] == f"c{n}"
        async with asyncio.timeout(timeout()):  # the reader and the writer failed, and retried
            await a.fanout.wait_until(lambda fanout: fanout.failures >= 4)
        async with httpx.AsyncClient(base_url=a.url) as http:
            health = await http.get("/healthz")
        assert health.status_code == 200  # this process still serves its own tabs
        assert health.json()["ok"] is True
        fanout = health.json()["fanout"]
        assert (fanout["mode"], fanout["ok"]) == ("redis", False)
        assert "ConnectionError" in fanout["reason"]
    lines = [r for r in caplog.records if r.name == "callguard.fanout"]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].levelno == logging.WARNING
    assert "local tabs still get their paints" in lines[0].getMessage()


@pytest.mark.redis
async def test_after_an_outage_a_gateway_catches_up_both_ways_and_says_so_once(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """B reaches Redis through a relay that is cut and then refuses connections. Meanwhile A
    clears one call and paints another for B's tab, and B paints for a tab on A. Once the relay
    lets B back in, B's tab gets the clear and the paint it missed, A's tab gets B's paint,
    and B logs one warning and one recovery line."""
    caplog.set_level(logging.INFO, logger="callguard.fanout")
    async with cutter("127.0.0.1", 6379) as relay:
        via_relay = f"redis://127.0.0.1:{relay.port}/0"
        settings_b = gateway_settings(api_key=API_KEY, redis_url=via_relay, redis_prefix=prefix)
        async with (
            cluster(prefix, count=1) as (a,),
            node(settings_b) as b,
            b.tab(RED_CALLER) as tab_b,
            a.tab(OWNER) as owner_a,
        ):
            async with asyncio.timeout(timeout()):
                await b.fanout.wait_until(lambda fanout: fanout.connected)
            await a.post_call(RED_CALLER, "before")
            assert (await recv(tab_b))["call_id"] == "before"

            relay.refusing = True
            relay.cut()
            async with asyncio.timeout(timeout()):
                await b.fanout.wait_until(lambda fanout: fanout.failures >= 2)
            assert await a.gateway.calls.end_call(RED_CALLER, "before")
            await a.post_call(RED_CALLER, "during")
            await b.post_call(OWNER, "from-b")
            assert b.fanout.health()["ok"] is False

            relay.refusing = False
            async with asyncio.timeout(timeout()):
                await b.fanout.wait_until(lambda fanout: fanout.health()["ok"] is True)
            caught_up = [await recv(tab_b), await recv(tab_b)]
            assert {(f["type"], f["call_id"]) for f in caught_up} == {
                ("clear", "before"),
                ("paint", "during"),
            }
            from_b = await recv(owner_a)
            assert (from_b["type"], from_b["call_id"]) == ("paint", "from-b")
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "callguard.fanout"]
    assert [level for level, _ in lines] == [logging.WARNING, logging.INFO], lines
    assert f"{via_relay} is back after" in lines[1][1]


async def test_the_outgoing_queue_is_bounded_and_keeps_the_newest_frame_per_call() -> None:
    tabs = Tabs()
    fanout = RedisFanout(tabs, closed_port_url(), queue_size=2)  # never started: nothing sent
    for n in range(3):
        await fanout.publish("7", "c1", f'{{"type":"paint","call_id":"c1","seq":{n}}}')
    assert (fanout.health()["queued"], fanout.health()["dropped"]) == (1, 0)
    for call_id in ("c2", "c3"):
        await fanout.publish("7", call_id, f'{{"type":"clear","call_id":"{call_id}"}}')
    assert (fanout.health()["queued"], fanout.health()["dropped"]) == (2, 1)
    await fanout.close()


def test_the_redis_url_chooses_the_fanout() -> None:
    assert isinstance(build_gateway(gateway_settings()).fanout, LocalFanout)
    assert isinstance(build_gateway(gateway_settings(redis_url=REDIS)).fanout, RedisFanout)
    env = {"CALLGUARD_SECRET": TEST_SECRET}
    assert Settings.from_env(env).redis_prefix == "callguard:"
    assert Settings.from_env({**env, "CALLGUARD_REDIS_PREFIX": "cg-eu:"}).redis_prefix == "cg-eu:"
    with pytest.raises(ConfigError, match=r"^CALLGUARD_REDIS_PREFIX: must be up to 64"):
        Settings.from_env({**env, "CALLGUARD_REDIS_PREFIX": "has space"})


@pytest.mark.redis
async def test_foreign_messages_on_the_channel_never_stop_the_reader(prefix: str) -> None:
    """Malformed messages and hash entries of another version are skipped; paints still cross."""
    client: aioredis.Redis = aioredis.from_url(REDIS)
    try:
        await client.hset(prefix + "calls", '[["x"], 1]', '["o", "soon", 5]')
        async with cluster(prefix) as (a, b), b.tab(RED_CALLER) as tab_b:
            for junk in ('["o", ["u"], "k", "f"]', '["o", "7", 5, "f"]', "[1, 2]", "not json"):
                await client.publish(prefix + "fanout", junk)
            await a.post_call(RED_CALLER, "c1")
            paint = await recv(tab_b)
            assert (paint["type"], paint["call_id"], paint["colour"]) == ("paint", "c1", "red")
            assert b.fanout.connected
    finally:
        await client.aclose()


DECISION = Decision("red", "#d32f2f", "foreign-client-in-work", "Чужой клиент")


@pytest.mark.parametrize(
    "frame",
    [
        wire.paint("c1", 3, DECISION, "en"),
        wire.clear('c"1\\'),
        wire.hello("7", 25.0, "1.0"),
        wire.error("busy", "no place"),
        wire.token("t", 1),
        '{"type":"pa\\"int","call_id":"c1"}',  # an escape inside the type: parsed
        '{"call_id":"c1","type":"clear"}',  # not ours: type not first
        '{"type": "clear"}',
        '{"type":5}',
        "[1, 2]",
    ],
)
def test_a_frames_type_is_what_parsing_it_gives(frame: str) -> None:
    """frame_type reads the type off the front of the gateway's own frames; it must give what
    parsing the whole frame gives, for those and for anything else."""
    doc = orjson.loads(frame)
    named = doc.get("type") if isinstance(doc, dict) else None
    assert frame_type(frame) == (named if isinstance(named, str) else "")
