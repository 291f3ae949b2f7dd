"""A call's phone is normalised once, where the call enters (issue 8): counted by tracing calls
to the pipeline's one normalisation point (Calls.normalize, which remembers recent spellings) with
the interpreter's profiler hook, not by patching it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import httpx

from gateway.live.calls import Calls
from gateway.web.app import create_app
from tests.live.conftest import RED_CALLER, RED_PHONE
from tests.portal.conftest import WEBHOOK_TOKEN, portal_settings
from tests.support import gateway_settings


@contextmanager
def counting_normalisations() -> Iterator[list[int]]:
    count = [0]
    code = Calls.normalize.__code__
    previous = sys.getprofile()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is code:
            count[0] += 1

    sys.setprofile(profile)
    try:
        yield count
    finally:
        sys.setprofile(previous)


async def test_a_tab_call_and_an_api_call_are_normalised_once() -> None:
    app = create_app(gateway_settings())
    calls = app.state.gateway.calls
    async with app.router.lifespan_context(app):
        with counting_normalisations() as count:
            paint = await calls.start_call(RED_CALLER, "c1", RED_PHONE, source="api")
        assert paint is not None
        assert paint.decision.colour == "red"
        assert count[0] == 1
        with counting_normalisations() as count:
            await calls.submit(RED_CALLER, "c2", RED_PHONE, source="ws")
            await calls.idle()
        assert count[0] == 1


async def test_a_portal_call_is_normalised_once_from_init_to_paint() -> None:
    app = create_app(portal_settings())
    intake = app.state.intake
    base = {"auth[application_token]": WEBHOOK_TOKEN, "data[CALL_ID]": "p1"}
    init = {**base, "event": "ONVOXIMPLANTCALLINIT", "data[CALLER_ID]": RED_PHONE}
    start = {**base, "event": "ONVOXIMPLANTCALLSTART", "data[USER_ID]": RED_CALLER}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gw") as client,
    ):
        with counting_normalisations() as count:
            for form in (init, start):
                assert (await client.post("/bitrix/events", data=form)).status_code == 200
            await intake.idle()
            await app.state.gateway.calls.idle()
        assert count[0] == 1
        frames = app.state.gateway.calls.current_frames(RED_CALLER)
        assert [cid for cid, _ in frames] == ["p1"]
