"""The report over a real portal's REST API (the fake portal): a call painted in a tab lands in
the ledger, and who may see it comes from department.get and user.get by UF_DEPARTMENT."""

from __future__ import annotations

import csv
import io
import json

import aiohttp

from gateway.live.tokens import issue_token
from gateway.run.runtime import Gateway
from gateway.tools.fakeportal import FakePortal
from tests.portal.conftest import open_tab, rest_gateway
from tests.support import TEST_SECRET
from tests.timing import timeout

RED_PHONE = "+7 (495) 123-45-67"  # ООО «Ромашка»: IN_WORK with user 6 (Moscow, head 4)


async def test_heads_see_their_departments_calls_over_rest(fake: FakePortal) -> None:
    async with rest_gateway(fake) as gw, open_tab(gw.url, "7") as tab:
        await tab.socket.send(json.dumps({"type": "call", "call_id": "c1", "phone": RED_PHONE}))
        paint = await tab.next("paint")
        assert paint["colour"] == "red"
        await tab.socket.send(json.dumps({"type": "ended", "call_id": "c1"}))
        await tab.next("clear")
        gateway: Gateway = gw.app.state.gateway
        assert gateway.recorder is not None
        await gateway.recorder.flush()
        seen: dict[str, object] = {}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(timeout())) as http:
            for user in ("4", "3", "5", "7"):
                token = issue_token(TEST_SECRET, user, 600.0)
                async with http.get(
                    f"{gw.url}/report.csv", headers={"Authorization": f"Bearer {token}"}
                ) as answer:
                    body = await answer.text()
                    seen[user] = (
                        [(r["call_id"], r["caller_name"], r["owner_name"])
                         for r in csv.DictReader(io.StringIO(body))]
                        if answer.status == 200
                        else answer.status
                    )  # fmt: skip
    row = ("c1", "Пётр Кузнецов", "Анна Смирнова")
    assert seen == {"4": [row], "3": [row], "5": [], "7": 403}
    assert fake.requests.get("department.get")
    assert fake.requests.get("user.get")
