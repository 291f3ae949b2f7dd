"""SIGTERM on one of two real gateway processes sharing Redis (issue 9 item 5): the tab is closed
with 1001, reconnects within a second (the snippet's chosen delay, not a measured time) to the
sibling, and gets its current paint there.

The page comes from the in-process demo gateway (its tokens are signed with the browser tests'
secret, which both processes share); the snippet's websocket goes through a relay that the test
points at the second process before stopping the first, as a balancer would.
"""

from __future__ import annotations

import re
import signal
import uuid

import pytest

from tests.browser.demo import RED, SECRET, WRAPPER, OpenDemo, ms
from tests.cutter import cutter
from tests.process import ServeProcess
from tests.redis_server import REDIS_URL, require_redis
from tests.timing import timeout

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

ROMASHKA = "+7 (495) 123-45-67"  # red for user 7
RECONNECT = re.compile(r"^\[callguard\] (going away: )?reconnect, ms ([\d.]+)$")


async def test_a_tab_of_a_stopped_process_reconnects_to_its_sibling_with_its_paint(
    open_demo: OpenDemo, gateway: str
) -> None:
    require_redis()
    env = {
        "CALLGUARD_SECRET": SECRET,
        "CALLGUARD_REDIS_URL": REDIS_URL,
        "CALLGUARD_REDIS_PREFIX": f"callguard:test:{uuid.uuid4().hex}:",
        "CALLGUARD_ALLOWED_ORIGINS": gateway,  # the page's origin: the demo gateway's
    }
    first, second = ServeProcess(env), ServeProcess(env)
    try:
        await first.ready()
        await second.ready()
        async with cutter("127.0.0.1", first.port) as relay:
            demo = await open_demo(gateway)
            logged: list[str] = []
            demo.page.on("console", lambda message: logged.append(message.text))
            await demo.open(user="7", ws=f"ws://127.0.0.1:{relay.port}/ws")
            await demo.connected()
            await demo.ring(ROMASHKA)
            await demo.wait_background(WRAPPER, RED, timeout())

            relay.target = ("127.0.0.1", second.port)  # the balancer now sends tabs there
            first.proc.send_signal(signal.SIGTERM)
            await demo.connected(hellos=2)
            assert (await demo.closes())[0] == 1001
            # The snippet's own words (its data-debug log, which the demo page turns on): the
            # 1001 was a gateway going away, and the delay it chose is under a second.
            retries = [(m[1], float(m[2])) for line in logged if (m := RECONNECT.match(line))]
            going_away, delay = retries[0]
            assert going_away
            assert delay < 1000
            await demo.page.wait_for_function(
                "window.__cg.paints.length >= 2", timeout=ms(timeout())
            )
            first_paint, again = (await demo.paints())[:2]
            assert (again["call_id"], again["colour"]) == (first_paint["call_id"], "red")
            assert await demo.background(WRAPPER) == RED
            assert relay.accepted >= 2  # the reconnect went through the relay, to the second
        assert await first.exited() in (0, -signal.SIGTERM)
        assert "Traceback" not in first.stderr
    finally:
        first.kill()
        second.kill()
