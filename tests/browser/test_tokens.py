"""The snippet's tokens in real Chromium (issue 9 item 2): renewals carry a page through the day,
and a refused token is retried instead of ending the page's colouring for good."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.live.tokens import check_token, issue_token
from tests.browser.demo import RED, SECRET, WRAPPER, OpenDemo, demo_settings, ms
from tests.browser.test_snippet import ROMASHKA, metric
from tests.cutter import cutter
from tests.support import running_gateway
from tests.timing import timeout

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# Seconds: long enough for the page to load and connect on a slow machine, then renewed at
# 40-50% of it, and refused (no skew allowed) once it has passed.
LIFETIME = int(timeout(2))


async def refused(base: str, token: str) -> None:
    """Wait until the gateway refuses ``token`` (4401): it has run out."""
    url = base.replace("http://", "ws://") + "/ws?token=" + token
    async with asyncio.timeout(LIFETIME + timeout(1)):
        while True:
            async with connect(url) as ws:
                with contextlib.suppress(ConnectionClosed):
                    await ws.recv()  # hello while it is still good
                if ws.close_code == 4401:
                    return
            await asyncio.sleep(0.2)


async def test_the_snippet_reconnects_with_its_renewed_token_after_the_original_expired(
    open_demo: OpenDemo,
) -> None:
    async with running_gateway(demo_settings().but(token_leeway=0.0)) as base:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        async with cutter(host, int(port)) as relay:
            original = issue_token(SECRET, "7", ttl=LIFETIME)
            demo = await open_demo(base)
            await demo.open(user="7", token=original, ws=f"ws://127.0.0.1:{relay.port}/ws")
            await demo.connected()
            [renewal, *_] = await demo.tokens()  # waits timeout(2) = LIFETIME at most
            renewed = check_token(SECRET, renewal["token"])
            assert (renewed.user_id, renewed.lifetime) == ("7", LIFETIME)
            assert renewal["expires_at"] == renewed.expires_at

            # The page's own token is now refused; the connection drops; the snippet comes back.
            await refused(base, original)
            relay.cut()
            await demo.connected(hellos=2)
            assert 4401 not in await demo.closes()
            assert relay.accepted >= 2
            await demo.ring(ROMASHKA)
            await demo.wait_background(WRAPPER, RED, timeout(1))


async def test_after_a_refused_token_the_snippet_retries_and_says_so_for_every_close(
    open_demo: OpenDemo,
) -> None:
    # The page's websocket goes through a relay to a gateway with another secret (a portal whose
    # secret was rotated first): refused. Pointed at the right one, the next retry gets in.
    async with running_gateway(demo_settings()) as base:
        # The page's origin is the first gateway's: the second must allow it, or it refuses the
        # handshake (403) before any token is looked at.
        other = demo_settings().but(
            secret="another-browser-tests-secret-0123456789", allowed_origins=(base,)
        )
        async with running_gateway(other) as wrong:
            host, port = wrong.removeprefix("http://").rsplit(":", 1)
            async with cutter(host, int(port)) as relay:
                demo = await open_demo(base)
                await demo.open(user="7", ws=f"ws://127.0.0.1:{relay.port}/ws", refused_retry="0.3")
                await demo.page.wait_for_function(
                    "() => window.__cg.closes.length >= 2", timeout=ms(timeout(1))
                )
                # Each refusal shows on the page (until the next retry, 0.3 s later, starts).
                await demo.page.wait_for_function(
                    "() => document.querySelector('#cg-conn').dataset.state === 'refused'",
                    timeout=ms(timeout(1)),
                )
                right_host, right_port = base.removeprefix("http://").rsplit(":", 1)
                relay.target = (right_host, int(right_port))
                await demo.connected()
                closes = await demo.closes()
                assert set(closes) == {4401}
                # Every refusal was a close the page heard of, and one the gateway counted.
                assert await metric(wrong, 'callguard_tab_closes_total{code="4401"}') == len(closes)
                await demo.ring(ROMASHKA)
                await demo.wait_background(WRAPPER, RED, timeout(1))
