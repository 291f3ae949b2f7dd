"""Issue 14 item 1: calls in flight are bounded per user and in all (gateway/live/inflight.py),
the places pure and through the pipeline over a CRM that hangs until the test releases it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import pytest

from gateway.crm.cache import CachedDirectory
from gateway.live.calls import MAX_CALLS_PER_USER, Calls
from gateway.live.inflight import ALL, USER, Busy, InFlight
from gateway.run.metrics import Metrics
from rules import load_policy
from tests.live.conftest import HangingDirectory
from tests.live.test_calls import RecordingFanout
from tests.timing import timeout


def phone(n: int) -> str:
    return f"+7 926 5{n:02d} 00 00"


@dataclass
class Pipeline:
    calls: Calls
    crm: HangingDirectory
    metrics: Metrics
    fanout: RecordingFanout


def pipeline(per_user: int, total: int) -> Pipeline:
    crm, metrics, fanout = HangingDirectory(), Metrics(), RecordingFanout()
    calls = Calls(
        CachedDirectory(crm),
        load_policy(),
        fanout,
        metrics,
        region="RU",
        lookup_deadline=60.0,  # the hanging CRM, not the deadline, holds the calls
        call_timeout=60.0,
        user_inflight=per_user,
        max_inflight=total,
    )
    return Pipeline(calls, crm, metrics, fanout)


def refused(metrics: Metrics, scope: str, source: str) -> float:
    value = metrics.registry.get_sample_value(
        "callguard_calls_refused_total", {"reason": "busy", "scope": scope, "source": source}
    )
    return value or 0.0


def test_places_per_user_and_in_all() -> None:
    places = InFlight(per_user=2, total=3)
    for user in ("7", "7", "6"):
        places.admit(user)
        places.take(user)
    with pytest.raises(Busy) as by_user:
        places.admit("7")
    assert (by_user.value.scope, by_user.value.limit) == (USER, 2)
    assert "CALLGUARD_USER_INFLIGHT" in by_user.value.message
    with pytest.raises(Busy) as in_all:
        places.admit("5")
    assert (in_all.value.scope, in_all.value.limit) == (ALL, 3)
    assert "CALLGUARD_MAX_INFLIGHT" in in_all.value.message
    places.give("7")
    places.admit("5")  # a place is free again
    assert (places.count, places.of("7"), places.peak, places.user_peak) == (2, 1, 3, 2)
    places.give("7")
    places.give("6")
    assert (places.count, places.of("7")) == (0, 0)


def test_a_burst_of_refusals_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    places = InFlight(per_user=2, total=100)
    caplog.set_level(logging.INFO, logger="callguard.inflight")
    for _ in range(2):
        places.take("7")
    for _ in range(50):
        with pytest.raises(Busy):
            places.admit("7")
    places.give("7")  # half the bound held: the burst is over
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "user 7 has 2 calls being looked up; refusing new ones (busy) until half are done",
        "user 7 takes calls again; 50 refused while busy",
    ]


async def test_a_user_over_the_bound_is_refused_at_once_and_others_are_not() -> None:
    p = pipeline(per_user=3, total=5)
    calls, crm, metrics = p.calls, p.crm, p.metrics
    for n in range(3):
        await calls.submit("7", f"c{n}", phone(n), source="ws")
    with pytest.raises(Busy) as busy:
        await calls.submit("7", "c3", phone(3), source="ws")
    assert busy.value.scope == USER
    with pytest.raises(Busy):
        await calls.start_call("7", "c3", phone(3), source="api")
    # No task was started for the refused calls: only the admitted ones look their number up.
    async with asyncio.timeout(timeout()):
        await crm.event("started").wait()
    assert calls.inflight.count == 3
    await calls.submit("6", "d0", phone(10), source="ws")
    await calls.submit("6", "d1", phone(11), source="ws")
    with pytest.raises(Busy) as busy:
        await calls.submit(
            "5", "e0", phone(20), source="ws"
        )  # a user with none: the gateway is full
    assert busy.value.scope == ALL
    assert (refused(metrics, USER, "ws"), refused(metrics, USER, "api")) == (1, 1)
    assert refused(metrics, ALL, "ws") == 1
    assert metrics.registry.get_sample_value("callguard_calls_total", {"source": "ws"}) == 5
    crm.release()
    await calls.idle()
    assert calls.inflight.count == 0
    await calls.submit("7", "c3", phone(3), source="ws")  # places are free again
    await calls.close()


async def test_the_same_call_again_replaces_or_joins_and_takes_no_place() -> None:
    p = pipeline(per_user=2, total=10)
    calls, crm = p.calls, p.crm
    await calls.submit("7", "c1", phone(1), source="ws")
    await calls.submit("7", "c2", phone(2), source="ws")
    # Another tab reports the same ring (joins), the page sends the call with another number
    # (replaces the decide under way), the API sends it again: none of them is a new place.
    await calls.submit("7", "c1", phone(1), only_if_unpainted=True, source="ws")
    await calls.submit("7", "c1", phone(3), source="ws")
    again = asyncio.ensure_future(calls.start_call("7", "c2", phone(2), source="api"))
    crm.release()
    assert (await again) is not None
    await calls.idle()
    assert (calls.inflight.count, calls.inflight.user_peak, calls.inflight.peak) == (0, 2, 2)
    await calls.close()


async def test_a_call_ended_by_the_cap_keeps_its_place_until_its_lookup_is_done() -> None:
    bound = MAX_CALLS_PER_USER + 4
    p = pipeline(per_user=bound, total=100)
    calls, crm = p.calls, p.crm
    for n in range(bound):
        await calls.submit("7", f"c{n}", phone(n), source="ws")
    await p.fanout.wait(bound - MAX_CALLS_PER_USER)  # the oldest were cleared
    assert calls.active == MAX_CALLS_PER_USER
    # Ended, but their lookups go on: the work is still there, and so are its places.
    assert calls.inflight.of("7") == bound
    with pytest.raises(Busy):
        await calls.submit("7", "more", phone(50), source="ws")
    crm.release()
    await calls.idle()
    assert calls.inflight.count == 0
    await calls.close()


async def test_a_paint_cancelled_before_it_ran_gives_its_place_back() -> None:
    calls = pipeline(per_user=1, total=1).calls
    event = calls.event("7", "c1", phone(1), source="portal")
    task = calls.start(event)
    assert task is not None
    task.cancel()  # as the portal's call end does to a paint still being started
    await asyncio.gather(task, return_exceptions=True)
    assert calls.inflight.count == 0
    assert calls.start(calls.event("7", "c2", phone(2), source="portal")) is not None
    await calls.close()
    assert calls.inflight.count == 0
