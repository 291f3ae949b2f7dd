"""The bare push server, the baseline of bench/throughput.py: a real server process, a real tab."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from gateway.tools.loadserver import API_KEY, ServerProcess
from gateway.tools.tabclient import Tab
from tests.timing import timeout


async def _call(client: httpx.AsyncClient, call_id: str) -> None:
    body = {"user_id": "7", "phone": "+74951000001", "call_id": call_id}
    auth = {"Authorization": f"Bearer {API_KEY}"}  # the bare server reads none: as the generator
    answer = await client.post("/api/calls", json=body, headers=auth)
    assert answer.status_code == 200
    assert answer.json() == {"status": "painted"}


@pytest.mark.parametrize("clears", [False, True])
async def test_the_bare_server_paints_and_clears_only_when_asked(clears: bool) -> None:
    server = ServerProcess(tune_gc=True, deflate=False, heartbeat=20.0, bare=True, clears=clears)
    frames: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    await server.start()
    try:
        async with asyncio.timeout(timeout(6)), httpx.AsyncClient(base_url=server.base) as client:
            uri = f"ws://127.0.0.1:{server.port}/ws?user=7"
            tab = await Tab.connect(uri, lambda _, frame: frames.put_nowait(orjson.loads(frame)))
            assert orjson.loads(tab.opened.result()) == {"type": "hello"}
            await _call(client, "c1")
            assert await frames.get() == {"type": "paint", "call_id": "c1", "seq": 1}
            tab.send('{"type":"applied","call_id":"c0","seq":1}')  # no answer, as the gateway
            tab.send('{"type":"ended","call_id":"c1"}')
            if clears:  # as the gateway answers ended: the same frames a call
                assert await frames.get() == {"type": "clear", "call_id": "c1"}
            await _call(client, "c2")
            # Without clears, nothing came between the two paints.
            assert await frames.get() == {"type": "paint", "call_id": "c2", "seq": 1}
            await tab.close()
    finally:
        await server.stop()


def test_clears_is_an_option_of_the_bare_server_only() -> None:
    from gateway.tools.loadserver import main

    with pytest.raises(SystemExit) as refused:
        main(["--clears"])
    assert refused.value.code == 2  # argparse's usage error, before any server starts
