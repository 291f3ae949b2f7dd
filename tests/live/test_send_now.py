"""A tab's frames written at once by the real server protocol, and in order when it must wait.

gateway/run/tabsocket.py offers ``send_now`` to the tab (gateway/live/tabs.py): a frame is written
where it is pushed while the transport takes it, and queued behind the tab's sender once the
peer stops reading and uvicorn pauses writing. Here a client reads nothing while megabytes of
numbered frames are pushed, then reads them all: none lost, none out of order.
"""

from __future__ import annotations

import asyncio

import orjson
from websockets.asyncio.client import connect

from gateway.run.runtime import Gateway
from gateway.web.app import create_app
from tests.live.test_loopback import recv, ws_url
from tests.support import gateway_settings, running_app
from tests.timing import timeout

USER = "41"
FRAMES = 6000
PADDING = "x" * 4000  # 6000 frames of ~4 kB: more than loopback's socket buffers hold (~10 MB)


async def test_frames_go_at_once_then_queue_in_order_while_the_peer_reads_nothing() -> None:
    settings = gateway_settings(tab_queue_bytes=64 * 1024**2)
    app = create_app(settings)
    gateway: Gateway = app.state.gateway
    async with (
        running_app(app, settings) as url,
        connect(ws_url(url, USER), max_size=None, max_queue=4) as ws,
    ):
        assert (await recv(ws))["type"] == "hello"
        (tab,) = gateway.tabs.of(USER)
        assert tab.send_now is not None  # the real protocol offers it
        tab.push("first", orjson.dumps({"n": -1}).decode())
        assert tab not in gateway.tabs.sending  # written at once: no sender task
        waited = False
        for n in range(FRAMES):  # pushed without a pause: the client reads none of them
            tab.push(f"c{n}", orjson.dumps({"n": n, "pad": PADDING}).decode())
            waited = waited or tab in gateway.tabs.sending
        assert waited, "the transport never paused: the test pushed too little"
        seen = []
        async with asyncio.timeout(timeout(2)):
            while len(seen) < FRAMES + 1:
                seen.append(orjson.loads(await ws.recv())["n"])
        assert seen == list(range(-1, FRAMES))
        assert not tab.closed
