"""The data-file directory follows the status lifecycle, so the demo can show it."""

from typing import Any

import aiohttp
import pytest

from gateway.crm.build import build_directory
from tests.portal.conftest import gateway_running, open_tab, portal_settings

RED_PHONE = "8 495 123-45-67"  # ООО «Ромашка» (company 10), IN_WORK with user 6 (Moscow, head 4)


async def change(url: str, doc: object) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/demo/api/company-status", json=doc) as resp,
    ):
        return resp.status, await resp.json()


@pytest.mark.parametrize("cached", [False, True], ids=["data-file", "data-file-behind-the-cache"])
async def test_peer_is_reverted_head_is_approved_and_open_calls_follow(cached: bool) -> None:
    settings = portal_settings(demo=True)
    directory = build_directory(settings) if cached else None
    try:
        async with gateway_running(settings, directory) as gw, open_tab(gw.url, "7") as tab:
            await tab.socket.send(f'{{"type":"call","call_id":"c1","phone":"{RED_PHONE}"}}')
            assert (await tab.next("paint"))["colour"] == "red"
            status, outcome = await change(
                gw.url, {"company_id": "10", "status": "DECLINED", "as_user": 7}
            )
            assert status == 200
            assert (outcome["action"], outcome["status"], outcome["actor"]) == (
                "reverted",
                "IN_WORK",
                "7",
            )
            assert "Статус компании «ООО «Ромашка»» не изменён" in outcome["notification"]
            # The data file's own administrator (user 1, "admin": true) may change it.
            status, outcome = await change(
                gw.url, {"company_id": 10, "status": "DECLINED", "as_user": "1"}
            )
            assert (outcome["action"], outcome["status"]) == ("approved", "DECLINED")
            # The open call is decided again at once: a declined company is not red any more.
            paint = await tab.next("paint")
            assert (paint["call_id"], paint["colour"]) == ("c1", "none")
            # And the next call too, from a fresh lookup.
            await tab.socket.send(f'{{"type":"call","call_id":"c2","phone":"{RED_PHONE}"}}')
            assert (await tab.next("paint"))["colour"] == "none"
    finally:
        if directory is not None:
            await directory.close()


async def test_bad_requests() -> None:
    async with gateway_running(portal_settings(demo=True)) as gw:
        assert await change(gw.url, {"company_id": "10", "status": "NOPE", "as_user": "1"}) == (
            422,
            {
                "error": "invalid_request",
                "message": "status must be one of PENDING, IN_WORK, DECLINED or null",
            },
        )
        assert await change(gw.url, {"status": "IN_WORK"}) == (
            422,
            {"error": "invalid_request", "message": "company_id and as_user are required ids"},
        )
        assert await change(gw.url, {"company_id": "999", "status": None, "as_user": "1"}) == (
            404,
            {"error": "not_found", "message": "no company with id 999"},
        )
    async with (
        gateway_running(portal_settings()) as gw,
        aiohttp.ClientSession() as session,
        session.post(gw.url + "/demo/api/company-status", json={}) as resp,
    ):
        assert resp.status == 404  # not a demo: no such route
