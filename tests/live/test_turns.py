"""One tab's burst of frames does not hold the event loop until the burst is done.

A tab that writes thousands of ``call`` frames at once hands the server one read of up to 256 kB.
Parsed whole, and its frames handled without a pause (a warm call is painted without
suspending), that read held every other tab until its last frame was painted: 45-90 ms for the
parse alone in bench/abuse.py. gateway/run/tabsocket.py parses a read in slices, one per turn of
the loop, and gateway/live/socket.py lets others run every few frames. Shown here by order, not
time: another user's call, sent just after the burst, is painted while most of the burst is
still to come; and every call of the burst is answered, in order.
"""

from __future__ import annotations

import asyncio

import orjson
from websockets.asyncio.client import connect

from gateway.run.runtime import Gateway
from gateway.run.tabsocket import FEED_BYTES, TabSocketProtocol
from gateway.web.app import create_app
from tests.live.conftest import RED_CALLER, RED_PHONE
from tests.live.test_loopback import call, recv, send, ws_url
from tests.support import gateway_settings, running_app
from tests.timing import timeout

FLOODER = "31"
BURST = 3000  # ~100 bytes a frame: ~300 kB, many times FEED_BYTES


max_queued = [0]


async def most_queued(protocol: TabSocketProtocol) -> None:
    """Each turn of the loop: the most frames the protocol has parsed and the app not taken."""
    while True:
        max_queued[0] = max(max_queued[0], protocol.queue.qsize())
        await asyncio.sleep(0)


async def test_another_users_call_is_painted_while_one_tabs_burst_is_being_read() -> None:
    settings = gateway_settings(
        tab_call_rate=1e6,  # the rate's own backpressure would pause the burst: not tested here
        user_inflight=BURST,
        max_inflight=BURST + 10,
        tab_queue_bytes=64 * 1024**2,  # the flooder reads its paints only at the end
    )
    app = create_app(settings)
    gateway: Gateway = app.state.gateway
    handled = gateway.metrics.calls.labels("ws")
    async with (
        running_app(app, settings) as url,
        connect(ws_url(url, FLOODER), max_size=None, max_queue=None) as flooder,
        connect(ws_url(url, RED_CALLER)) as victim,
    ):
        assert (await recv(flooder))["type"] == "hello"
        assert (await recv(victim))["type"] == "hello"
        (tab,) = gateway.tabs.of(FLOODER)
        assert tab.send_now is not None
        protocol = getattr(tab.send_now, "__self__", None)  # the server's TabSocketProtocol
        assert isinstance(protocol, TabSocketProtocol)
        queued = asyncio.get_running_loop().create_task(most_queued(protocol))
        frames = [call(f"b{n:05d}", RED_PHONE) for n in range(BURST)]
        for frame in frames:
            flooder.protocol.send_text(orjson.dumps(frame))
        burst = b"".join(flooder.protocol.data_to_send())
        assert len(burst) > 10 * FEED_BYTES
        before = handled.value
        flooder.transport.write(burst)  # one write: the server reads it in a few large reads
        await send(victim, call("v1", RED_PHONE))
        async with asyncio.timeout(timeout(2)):
            while (doc := await recv(victim))["type"] != "paint":
                pass
        assert doc["call_id"] == "v1"
        assert handled.value - before < BURST / 2, "the burst held the loop until it was done"

        # Each call comes as its paint, or as its clear when a newer call of the user ended it
        # (MAX_CALLS_PER_USER) before the paint was read: the newest frame of a call is kept.
        seen: dict[str, None] = {}
        async with asyncio.timeout(timeout(4)):
            while len(seen) < BURST:
                doc = orjson.loads(await flooder.recv())
                assert doc["type"] in ("paint", "clear"), doc
                seen.setdefault(str(doc["call_id"]))
        assert list(seen) == [f"b{n:05d}" for n in range(BURST)]
        queued.cancel()
        # Parsed a slice a turn: never more frames waiting than one slice holds (and the few
        # that came before), where a whole read queued ~2,500.
        assert max_queued[0] <= FEED_BYTES // (len(burst) // BURST) + 16
        assert not any(tab.closed for tab in gateway.tabs.of(FLOODER))
