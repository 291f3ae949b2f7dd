"""POST /bitrix/events on a running gateway (embedded data file): the fake portal posts real
form-encoded events; tabs are real websockets."""

import asyncio
from typing import Any

import aiohttp
import pytest
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway.crm.dataset import load_dataset
from gateway.portal.approved import open_store
from gateway.portal.events import MAX_BODY, CrmChange
from gateway.portal.intake import EventIntake
from gateway.portal.queues import WorkQueue
from gateway.portal.status_datafile import DataFileStatusPortal
from gateway.portal.statuses import StatusGuard
from gateway.run.runtime import build_gateway
from gateway.tools.fakeportal import FakePortal, encode_form
from tests.live.conftest import HangingDirectory
from tests.portal.conftest import WEBHOOK_TOKEN, gateway_running, open_tab, portal_settings
from tests.timing import timeout

RED_PHONE = "+7 (495) 123-45-67"  # ООО «Ромашка», IN_WORK with user 6: red for user 7
CALL_EVENTS = ["ONVOXIMPLANTCALLINIT", "ONVOXIMPLANTCALLSTART", "ONVOXIMPLANTCALLEND"]


async def post(url: str, body: bytes | str) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def delivered(fake: FakePortal, count: int) -> list[int | None]:
    return [d.status for d in await fake.deliveries.wait(count, timeout())]


async def test_token_good_wrong_and_missing(fake: FakePortal) -> None:
    async with (
        gateway_running(portal_settings()) as gw,
        open_tab(gw.url, "7") as tab,
    ):
        fake.subscribe(gw.events_url, WEBHOOK_TOKEN, ["ONVOXIMPLANTCALLINIT"])
        fake.subscribe(gw.events_url + "?wrong", "not-the-token", ["ONVOXIMPLANTCALLSTART"])
        fake.call_init("c1", RED_PHONE)
        assert await delivered(fake, 1) == [200]
        fake.call_start("c1", 7)  # wrong token: refused, nothing done
        assert await delivered(fake, 2) == [200, 401]
        status, body = await post(
            gw.events_url,
            encode_form(
                {"event": "ONVOXIMPLANTCALLSTART", "data": {"CALL_ID": "c1", "USER_ID": "7"}}
            ),
        )
        assert (status, body) == (
            401,
            {"error": "bad_token", "message": "auth[application_token] is missing"},
        )
        # A good start of another call: the tab's first paint is that one, so c1 was never painted.
        fake.events.unsubscribe(gw.events_url + "?wrong")
        fake.subscribe(gw.events_url + "?start", WEBHOOK_TOKEN, ["ONVOXIMPLANTCALLSTART"])
        fake.call_init("c2", RED_PHONE)
        assert await delivered(fake, 3) == [200, 401, 200]
        fake.call_start("c2", 7)
        paint = await tab.next("paint")
        assert (paint["call_id"], paint["colour"]) == ("c2", "red")
        assert (await delivered(fake, 4))[-1] == 200


async def test_without_a_webhook_token_the_endpoint_says_what_to_set() -> None:
    async with gateway_running(portal_settings(webhook_token=None)) as gw:
        status, body = await post(gw.events_url, "event=ONCRMLEADADD")
    assert status == 503
    assert body == {
        "error": "webhook_disabled",
        "message": "POST /bitrix/events is off: set CALLGUARD_WEBHOOK_TOKEN to the outgoing webhook's application token",
    }


async def test_malformed_oversized_and_unknown(fake: FakePortal) -> None:
    async with gateway_running(portal_settings()) as gw:
        assert await post(gw.events_url, "event") == (
            400,
            {"error": "malformed", "message": "body is not a form: bad query field: 'event'"},
        )
        bad_call = encode_form(
            {
                "event": "ONVOXIMPLANTCALLSTART",
                "data": {"CALL_ID": "c1"},
                "auth": {"application_token": WEBHOOK_TOKEN},
            }
        )
        assert await post(gw.events_url, bad_call) == (
            400,
            {
                "error": "malformed",
                "message": "ONVOXIMPLANTCALLSTART: data[USER_ID] must be a numeric id, got None",
            },
        )
        status, body = await post(gw.events_url, b"a=" + b"x" * MAX_BODY)
        assert (status, body["error"]) == (413, "too_large")
        fake.subscribe(gw.events_url, WEBHOOK_TOKEN, ["ONCRMDEALUPDATE"])
        fake.emit("ONCRMDEALUPDATE", {"FIELDS": {"ID": "5"}})
        assert await delivered(fake, 1) == [200]
        status, body = await post(
            gw.events_url,
            encode_form({"event": "ONAPPTEST", "auth": {"application_token": WEBHOOK_TOKEN}}),
        )
        assert (status, body) == (200, {"ok": True, "ignored": "ONAPPTEST"})


async def test_call_start_paints_and_call_end_clears(fake: FakePortal) -> None:
    async with (
        gateway_running(portal_settings()) as gw,
        open_tab(gw.url, "7") as tab,
    ):
        fake.subscribe(gw.events_url, WEBHOOK_TOKEN, CALL_EVENTS)
        fake.call_init("c1", RED_PHONE)
        await delivered(fake, 1)
        fake.call_start("c1", 7)
        paint = await tab.next()
        assert (paint["type"], paint["call_id"], paint["colour"], paint["seq"]) == (
            "paint",
            "c1",
            "red",
            1,
        )
        fake.call_end("c1", RED_PHONE, 7)
        assert await tab.next() == {"type": "clear", "call_id": "c1"}


async def test_call_start_keeps_the_tabs_own_paint(fake: FakePortal) -> None:
    async with (
        gateway_running(portal_settings()) as gw,
        open_tab(gw.url, "7") as tab,
    ):
        fake.subscribe(gw.events_url, WEBHOOK_TOKEN, CALL_EVENTS)
        await tab.socket.send(
            '{"type":"call","call_id":"c1","phone":"84951234567","direction":"in"}'
        )
        assert (await tab.next())["seq"] == 1
        fake.call_init("c1", RED_PHONE)
        fake.call_start("c1", 7)
        await delivered(fake, 2)
        await gw.idle()
        fake.call_end("c1", RED_PHONE, 7)
        assert await tab.next() == {"type": "clear", "call_id": "c1"}  # no second paint came first


async def test_start_before_init_and_end_before_start(fake: FakePortal) -> None:
    async with (
        gateway_running(portal_settings()) as gw,
        open_tab(gw.url, "7") as tab,
    ):
        fake.subscribe(gw.events_url, WEBHOOK_TOKEN, CALL_EVENTS)
        # The portal's queue does not promise order.
        fake.call_start("late-init", 7)
        await delivered(fake, 1)
        fake.call_init("ended", RED_PHONE)
        await delivered(fake, 2)
        fake.call_end("ended", RED_PHONE, 7)
        await delivered(fake, 3)
        fake.call_start("ended", 7)  # after its end: must not paint a finished call
        await delivered(fake, 4)
        fake.call_init("late-init", RED_PHONE)
        paint = await tab.next("paint")
        assert (paint["call_id"], paint["colour"]) == ("late-init", "red")


async def test_call_starts_beyond_the_users_calls_in_flight_are_dropped(
    fake: FakePortal, caplog: pytest.LogCaptureFixture
) -> None:
    crm = HangingDirectory()  # the first call's lookup holds its place until released
    settings = portal_settings(user_inflight=1, lookup_deadline=30.0)
    async with gateway_running(settings, crm) as gw, open_tab(gw.url, "7") as tab:
        fake.subscribe(gw.events_url, WEBHOOK_TOKEN, CALL_EVENTS)
        for n in range(4):
            fake.call_init(f"c{n}", f"+7 926 70{n} 00 00")
            fake.call_start(f"c{n}", 7)
        assert await delivered(fake, 8) == [200] * 8  # accepted: the drop happens behind
        async with asyncio.timeout(timeout()):
            await gw.portal.telephony.join()
        registry = gw.app.state.gateway.metrics.registry
        dropped = {"reason": "busy", "scope": "user", "source": "portal"}
        assert registry.get_sample_value("callguard_calls_refused_total", dropped) == 3
        assert registry.get_sample_value("callguard_calls_total", {"source": "portal"}) == 1
        busy = [r for r in caplog.records if "refusing new ones (busy)" in r.getMessage()]
        assert [r.getMessage() for r in busy] == [
            "user 7 has 1 calls being looked up; refusing new ones (busy) until half are done"
        ]
        crm.release()
        paint = await tab.next("paint")
        assert paint["call_id"] == "c0"


async def test_a_draining_gateway_refuses_new_events() -> None:
    async with gateway_running(portal_settings()) as gw:
        assert await gw.portal.drain(timeout())  # nothing was queued: drained at once
        form = {"event": "ONVOXIMPLANTCALLSTART", "data": {"CALL_ID": "c1", "USER_ID": "7"}}
        form["auth"] = {"application_token": WEBHOOK_TOKEN}
        status, body = await post(gw.events_url, encode_form(form))
        metrics = generate_latest(gw.app.state.gateway.metrics.registry).decode()
    assert (status, body["error"]) == (503, "shutting_down")
    assert 'callguard_portal_events_total{event="-",outcome="shutting_down"} 1.0' in metrics


async def test_a_full_queue_drops_instead_of_growing() -> None:
    gate = asyncio.Event()
    taken = asyncio.Event()
    handled: list[int] = []

    async def handle(item: int) -> None:
        taken.set()
        await gate.wait()
        handled.append(item)

    queue: WorkQueue[int] = WorkQueue("test", handle, capacity=2, workers=1)
    queue.start()
    try:
        assert queue.offer(1)
        async with asyncio.timeout(timeout()):
            await taken.wait()  # the worker holds item 1 and blocks on the gate
        assert queue.offer(2)
        assert queue.offer(3)
        assert not queue.offer(4)
        assert queue.size == 2
        gate.set()
        async with asyncio.timeout(timeout()):
            await queue.join()
        assert handled == [1, 2, 3]
    finally:
        await queue.stop()


async def test_a_failing_item_does_not_stop_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    handled: list[int] = []

    async def handle(item: int) -> None:
        if item == 1:
            raise RuntimeError("boom")
        handled.append(item)

    queue: WorkQueue[int] = WorkQueue("test", handle, capacity=4, workers=1)
    queue.start()
    try:
        queue.offer(1)
        queue.offer(2)
        async with asyncio.timeout(timeout()):
            await queue.join()
        assert handled == [2]
        assert "test: handling 1 failed" in caplog.text
    finally:
        await queue.stop()
    with pytest.raises(ValueError, match="capacity and workers must be at least 1"):
        WorkQueue("bad", handle, capacity=0, workers=1)


def test_when_the_queue_is_full_the_event_is_dropped_and_counted() -> None:
    # A Portal whose workers never start: the first event fills its one-place queue.
    gateway = build_gateway(portal_settings())
    portal = EventIntake(WEBHOOK_TOKEN, gateway.calls, gateway.metrics.registry, queue_size=1)
    app = Starlette(routes=[Route("/bitrix/events", portal.receive, methods=["POST"])])
    body = encode_form(
        {
            "event": "ONVOXIMPLANTCALLEND",
            "data": {"CALL_ID": "c1", "PORTAL_USER_ID": "7"},
            "auth": {"application_token": WEBHOOK_TOKEN},
        }
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    with TestClient(app) as client:
        first = client.post("/bitrix/events", content=body, headers=headers)
        second = client.post("/bitrix/events", content=body, headers=headers)
    assert (first.status_code, first.json()) == (200, {"ok": True})
    assert (second.status_code, second.json()) == (
        503,
        {"error": "busy", "message": "event queue full, event dropped"},
    )
    exposition = generate_latest(gateway.metrics.registry).decode()
    assert (
        'callguard_portal_events_total{event="ONVOXIMPLANTCALLEND",outcome="accepted"} 1.0'
        in exposition
    )
    assert (
        'callguard_portal_events_total{event="ONVOXIMPLANTCALLEND",outcome="dropped"} 1.0'
        in exposition
    )


async def test_a_failing_status_store_still_refreshes_the_cache(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The status lock lives in Redis, and Redis is down: the guard cannot judge the change,
    # but the company's numbers must still be refreshed, or calls show the old colour for a TTL.
    gateway = build_gateway(portal_settings())
    # Nothing listens on the discard port.
    store = open_store(gateway.database, "redis://127.0.0.1:9/0")
    data = load_dataset()
    guard = StatusGuard(DataFileStatusPortal(data), store, gateway.policy, ())
    refreshed: list[tuple[str, str, bool]] = []

    async def refresh(kind: str, entity_id: str, deleted: bool) -> set[str]:
        refreshed.append((kind, entity_id, deleted))
        return set()

    portal = EventIntake(
        WEBHOOK_TOKEN, gateway.calls, gateway.metrics.registry, refresh=refresh, guard=guard
    )
    await portal.start()
    try:
        assert portal.crm.offer(CrmChange("company", "update", "10"))
        async with asyncio.timeout(timeout()):
            await portal.idle()
    finally:
        await portal.stop()
        await gateway.calls.close()
    assert refreshed == [("company", "10", False)]
    assert "company 10: status not checked" in caplog.text
