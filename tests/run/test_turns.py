"""New connections start a few per turn of the loop (gateway/run/turns.py), in arrival order,
and none is lost however many come at once."""

from __future__ import annotations

import asyncio

import orjson
from websockets.asyncio.client import connect

from gateway.run.turns import Openings
from gateway.web.app import create_app
from tests.live.test_loopback import ws_url
from tests.support import gateway_settings, running_app
from tests.timing import timeout


async def test_at_most_per_turn_start_in_one_turn_and_the_rest_wait_in_order() -> None:
    loop = asyncio.get_running_loop()
    openings = Openings(per_turn=3)
    started: list[int] = []
    admitted = [openings.admit(loop) for _ in range(3)]
    assert admitted == [True, True, True]
    assert not openings.admit(loop)  # this turn's are taken
    for n in range(7):
        openings.wait(loop, lambda n=n: started.append(n))
    assert started == []  # not in this turn
    turns = []
    while len(started) < 7:
        await asyncio.sleep(0)  # one turn: the booked turn runs before this task resumes
        turns.append(list(started))
    assert turns == [[0, 1, 2], [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5, 6]]
    # The last turn started one: two places are left in it, then none until the next turn.
    assert [openings.admit(loop) for _ in range(3)] == [True, True, False]
    await asyncio.sleep(0)
    assert openings.admit(loop)
    assert not openings.waiting


async def test_a_waiting_connection_goes_behind_those_already_waiting() -> None:
    loop = asyncio.get_running_loop()
    openings = Openings(per_turn=1)
    order: list[str] = []
    assert openings.admit(loop)
    openings.wait(loop, lambda: order.append("first"))
    # A free place in a later turn still goes to the one that waited first.
    await asyncio.sleep(0)
    assert order == ["first"]
    assert not openings.admit(loop)
    openings.wait(loop, lambda: order.append("second"))
    await asyncio.sleep(0)
    assert order == ["first", "second"]


async def test_a_crowd_of_tabs_connecting_at_once_all_open() -> None:
    settings = gateway_settings()
    app = create_app(settings)
    async with running_app(app, settings) as url:

        async def tab(n: int) -> str:
            async with connect(ws_url(url, str(100 + n))) as ws:
                async with asyncio.timeout(timeout(2)):
                    hello = orjson.loads(await ws.recv())
                return str(hello["user_id"])

        users = await asyncio.gather(*(tab(n) for n in range(150)))
    assert users == [str(100 + n) for n in range(150)]
