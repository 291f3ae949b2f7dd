"""Issue 14 item 1's acceptance on a real ``callguard serve`` process: one tab floods distinct
numbers while the CRM (the fake portal) hangs, so every admitted lookup stays in flight. The
flooder gets ``busy``; another user's call still paints; ``/healthz`` answers; the in-flight
gauges never pass their bounds; one log line tells the burst. Nothing here measures time: the
timeouts only catch hangs, and the flood is bounded in count (3,000 frames, loopback only)."""

from __future__ import annotations

import asyncio
import signal

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from gateway.live.inflight import MAX_INFLIGHT, USER_INFLIGHT
from gateway.live.tokens import issue_token
from gateway.tools.fakeportal import FakePortal
from tests.process import ServeProcess, serving
from tests.timing import timeout

SECRET = "flood-test-secret-0123456789abcdef-0123"
API_KEY = "flood-test-api-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
RED_PHONE = "+7 (495) 123-45-67"  # ООО «Ромашка», IN_WORK with user 6: red for user 7
VICTIM = "7"
FLOODER = "100"
FRAMES = 3000


def settings(fake: FakePortal) -> dict[str, str]:
    return {
        "CALLGUARD_SECRET": SECRET,
        "CALLGUARD_API_KEY": API_KEY,
        "CALLGUARD_PORTAL_URL": fake.webhook_url,
        # The portal's budget opened up: the hanging CRM, not the budget, holds the lookups.
        "CALLGUARD_RATE_BURST": "10000",
        "CALLGUARD_RATE_PER_SECOND": "10000",
        "CALLGUARD_USER_RATE_SHARE": "1",
        "CALLGUARD_LOOKUP_DEADLINE": "30",
        # The in-flight bound, not the tab's rate or its queue, is what this test meets.
        "CALLGUARD_TAB_CALL_RATE": "1000",
        "CALLGUARD_TAB_QUEUE_BYTES": str(8 * 1024 * 1024),
    }


async def tab(gateway: ServeProcess, user: str) -> ClientConnection:
    url = gateway.url.replace("http", "ws") + "/ws?token=" + issue_token(SECRET, user)
    ws = await connect(url, compression=None, max_queue=None)
    assert orjson.loads(await ws.recv())["type"] == "hello"
    return ws


def call(call_id: str, phone: str) -> str:
    return orjson.dumps({"type": "call", "call_id": call_id, "phone": phone}).decode()


async def paint_of(ws: ClientConnection, call_id: str) -> dict[str, object]:
    async with asyncio.timeout(timeout(2)):
        while True:
            frame = orjson.loads(await ws.recv())
            if frame["type"] == "paint" and frame["call_id"] == call_id:
                return dict(frame)


async def flood(ws: ClientConnection) -> dict[str, int]:
    """Send the frames as fast as the socket takes them, reading the answers meanwhile (a tab
    that stops reading is closed 1013: another limit); the error codes answered, counted."""
    codes: dict[str, int] = {}

    async def read() -> None:
        while True:
            frame = orjson.loads(await ws.recv())
            if frame["type"] == "error":
                if frame["code"] == "invalid_json":  # the marker: every call was answered
                    return
                codes[frame["code"]] = codes.get(frame["code"], 0) + 1

    reader = asyncio.ensure_future(read())
    for n in range(FRAMES):
        await ws.send(call(f"f{n}", f"+7 926 5{n // 10_000:02d} {n % 10_000:04d}"))
    await ws.send("{nope")  # frames are handled in order: its answer comes after all the others
    async with asyncio.timeout(timeout(4)):
        await reader
    return codes


def samples(text: str) -> dict[str, float]:
    return {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in text.splitlines())
        if name and not name.startswith("#")
    }


async def test_a_flood_of_distinct_numbers_gets_busy_and_leaves_the_others_alone() -> None:
    async with FakePortal() as fake, serving(settings(fake)) as gateway:
        victim = await tab(gateway, VICTIM)
        await victim.send(call("warm", RED_PHONE))  # the victim's number is in the cache now
        assert (await paint_of(victim, "warm"))["colour"] == "red"
        fake.hang("*", times=None)  # from here on every REST request hangs until released
        flooder = await tab(gateway, FLOODER)
        codes = await flood(flooder)
        assert set(codes) <= {"busy", "rate_limited"}
        # Every frame the tab's rate let through was admitted until the user's places were
        # all taken, and refused from then on: the lookups hang, so none was given back.
        assert codes["busy"] == FRAMES - USER_INFLIGHT - codes.get("rate_limited", 0)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=timeout()) as http:
            # The flooder's calls over the API are refused the same way, at once.
            body = {"user_id": FLOODER, "phone": "+7 926 999 00 00", "call_id": "api1"}
            reply = await http.post("/api/calls", json=body, headers=AUTH)
            assert (reply.status_code, reply.json()["error"]) == (503, "busy")
            assert reply.headers["Retry-After"] == "30"
            # Another user's call paints; the gateway answers its health check.
            await victim.send(call("v1", RED_PHONE))
            assert (await paint_of(victim, "v1"))["colour"] == "red"
            assert (await http.get("/healthz")).status_code == 200
            metrics = samples((await http.get("/metrics", headers=AUTH)).text)
            assert metrics["callguard_calls_in_flight"] == USER_INFLIGHT
            assert metrics['callguard_calls_in_flight_peak{scope="user"}'] == USER_INFLIGHT
            assert metrics['callguard_calls_in_flight_peak{scope="all"}'] <= MAX_INFLIGHT
            busy = 'callguard_calls_refused_total{reason="busy",scope="user",source="ws"}'
            assert metrics[busy] == codes["busy"]
            fake.release()  # the hung lookups fail now: every place is given back
            async with asyncio.timeout(timeout(2)):
                while True:  # another process: its gauge is the condition to wait on
                    text = (await http.get("/metrics")).text
                    if samples(text)["callguard_calls_in_flight"] == 0:
                        break
                    await asyncio.sleep(0.05)
        await victim.close()
        await flooder.close()
        gateway.proc.send_signal(signal.SIGINT)
        await gateway.exited()
    assert "Traceback" not in gateway.stderr
    refusing = [line for line in gateway.stderr.splitlines() if "refusing new ones" in line]
    assert len(refusing) == 1, refusing  # the burst is told once, not once per frame
    assert f"user {FLOODER} takes calls again; {codes['busy'] + 1} refused" in gateway.stderr
