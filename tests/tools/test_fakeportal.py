"""The fake portal answers like Bitrix24 (reference/bitrix24.md): shapes, paging, batch, errors,
rate limit, outgoing-webhook bodies. Each test speaks plain HTTP to it, as a portal client would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web

from gateway.crm.forms import parse_query
from gateway.tools.fakeportal import FakePortal, normalize_phone
from tests.timing import timeout

Call = Any


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout())) as session:
        yield session


async def rest(
    http: aiohttp.ClientSession, portal: FakePortal, method: str, body: Any = None, **kw: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(portal.webhook_url + method, json=body, **kw) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("typed", "normal"),
    [
        ("8 (999) 123-45-67", "79991234567"),
        ("+7 999 123 4567", "79991234567"),
        ("00 49 30 1234567", "49301234567"),
        ("011 1 212 555 0100", "12125550100"),
        ("(812) 700-10-20", "8127001020"),  # 80/81/82 keep their 8
        ("030 1234567", "301234567"),
        ("+7 495 222-33-45 доб. 101", "74952223345"),
    ],
)
def test_normalize_phone_is_bitrix_normalize_phone(typed: str, normal: str) -> None:
    assert normalize_phone(typed) == normal


async def test_findbycomm_answers_integer_ids_or_an_empty_array(
    http: aiohttp.ClientSession, fake_portal: FakePortal
) -> None:
    status, body = await rest(
        http,
        fake_portal,
        "crm.duplicate.findbycomm.json",
        {"type": "PHONE", "values": ["8 495 123 45 67"]},
    )
    assert status == 200
    assert body["result"] == {"LEAD": [43], "COMPANY": [10]}
    assert set(body["time"]) >= {"start", "finish", "duration", "operating_reset_at"}
    _, body = await rest(
        http, fake_portal, "crm.duplicate.findbycomm", {"type": "PHONE", "values": ["+70000000000"]}
    )
    assert body["result"] == []
    _, body = await rest(
        http,
        fake_portal,
        "crm.duplicate.findbycomm",
        {"type": "PHONE", "values": ["+74951234567"], "entity_type": "LEAD"},
    )
    assert body["result"] == {"LEAD": [43]}


async def test_findbycomm_reads_at_most_twenty_values(
    http: aiohttp.ClientSession, fake_portal: FakePortal
) -> None:
    values = [f"+7000000{i:04d}" for i in range(20)] + ["+74951234567"]
    _, body = await rest(
        http, fake_portal, "crm.duplicate.findbycomm", {"type": "PHONE", "values": values}
    )
    assert body["result"] == []


@pytest.mark.parametrize(
    ("body", "description"),
    [
        ({"values": ["1"]}, "Communication type is not defined"),
        (
            {"type": "FAX", "values": ["1"]},
            "Communication type 'FAX' is not supported in current context",
        ),
        ({"type": "PHONE", "values": "+7999"}, "Communication values is not defined"),
        (
            {"type": "PHONE", "values": ["1"], "entity_type": "DEAL"},
            "Deal is not supported in current context.",
        ),
    ],
)
async def test_findbycomm_errors(
    http: aiohttp.ClientSession, fake_portal: FakePortal, body: dict[str, Any], description: str
) -> None:
    status, answer = await rest(http, fake_portal, "crm.duplicate.findbycomm", body)
    assert (status, answer) == (400, {"error": "", "error_description": description})


async def test_get_has_string_ids_and_phone_only_when_there_is_one(
    http: aiohttp.ClientSession, fake_portal: FakePortal
) -> None:
    _, body = await rest(http, fake_portal, "crm.company.get", {"id": 10})
    company = body["result"]
    assert company["ID"] == "10"
    assert company["ASSIGNED_BY_ID"] == "6"
    assert company["UF_CRM_CALLGUARD_STATUS"] == fake_portal.status_item("IN_WORK")
    [phone] = company["PHONE"]
    assert set(phone) == {"ID", "VALUE_TYPE", "VALUE", "TYPE_ID"}
    assert (phone["VALUE"], phone["TYPE_ID"]) == ("+7 (495) 123-45-67", "PHONE")
    _, body = await rest(http, fake_portal, "crm.company.get", {"ID": "13"})
    assert body["result"]["HAS_PHONE"] == "N"
    assert "PHONE" not in body["result"]
    status, body = await rest(http, fake_portal, "crm.company.get", {"id": 999})
    assert (status, body) == (400, {"error": "", "error_description": "Not found"})


async def test_list_pages_by_fifty_with_next_and_total(
    http: aiohttp.ClientSession, fake_portal: FakePortal
) -> None:
    for i in range(120):
        fake_portal.store.add("lead", {"TITLE": f"Lead {i}", "ASSIGNED_BY_ID": "6"}, "1")
    _, first = await rest(http, fake_portal, "crm.lead.list", {"select": ["ID", "TITLE"]})
    assert (len(first["result"]), first["next"], first["total"]) == (50, 50, 128)
    assert set(first["result"][0]) == {"ID", "TITLE"}
    _, last = await rest(http, fake_portal, "crm.lead.list", {"start": 100})
    assert (len(last["result"]), last["total"]) == (28, 128)
    assert "next" not in last
    assert "PHONE" not in last["result"][0]  # multifields only when selected
    _, uncounted = await rest(http, fake_portal, "crm.lead.list", {"start": -1})
    assert "total" not in uncounted


async def test_an_empty_filter_value_filters_nothing(
    http: aiohttp.ClientSession, fake_portal: FakePortal
) -> None:
    _, body = await rest(http, fake_portal, "crm.company.list", {"filter": {"ID": ""}})
    assert body["total"] == 10
    _, body = await rest(http, fake_portal, "crm.company.list", {"filter": {"@ID": ["0", ""]}})
    assert body["total"] == 0


async def test_a_form_body_with_bracket_keys_is_read_like_json(
    http: aiohttp.ClientSession, fake_portal: FakePortal
) -> None:
    form = "filter[PHONE]=8 916 000-11-22&select[]=ID&select[]=NAME"
    async with http.post(
        fake_portal.webhook_url + "crm.contact.list",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as resp:
        body = await resp.json()
    assert body["result"] == [{"ID": "20", "NAME": "Пётр"}]


async def test_batch_resolves_references_and_reports_errors(
    http: aiohttp.ClientSession, fake_portal: FakePortal
) -> None:
    cmd = {
        "dup": "crm.duplicate.findbycomm?type=PHONE&values[]=%2B74951234567",
        "co": "crm.company.get?id=$result[dup][COMPANY][0]",
        "usr": "user.get?ID=$result[co][ASSIGNED_BY_ID]",
        "bad": "crm.company.get?id=999",
    }
    _, body = await rest(http, fake_portal, "batch", {"halt": 0, "cmd": cmd})
    out = body["result"]
    assert out["result"]["co"]["TITLE"] == "ООО «Ромашка»"
    assert [u["ID"] for u in out["result"]["usr"]] == ["6"]
    assert out["result"]["usr"][0]["UF_DEPARTMENT"] == [3]
    assert out["result_error"] == {"bad": {"error": "", "error_description": "Not found"}}
    assert out["result_total"] == {"usr": 1}
    assert out["result_next"] == []
    _, body = await rest(
        http,
        fake_portal,
        "batch",
        {"halt": 1, "cmd": ["crm.company.get?id=999", "crm.company.get?id=10"]},
    )
    assert body["result"]["result"] == []
    # halted after the first: PHP's array [0 => error] is a JSON list
    assert body["result"]["result_error"] == [{"error": "", "error_description": "Not found"}]


async def test_batch_limits(http: aiohttp.ClientSession, fake_portal: FakePortal) -> None:
    status, body = await rest(http, fake_portal, "batch", {"cmd": ["scope"] * 51})
    assert (status, body["error"]) == (400, "ERROR_BATCH_LENGTH_EXCEEDED")
    _, body = await rest(http, fake_portal, "batch", {"cmd": {"a": "batch?cmd[]=scope"}})
    assert body["result"]["result_error"]["a"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"


async def test_auth_and_method_errors(http: aiohttp.ClientSession, fake_portal: FakePortal) -> None:
    async with http.post(fake_portal.url + "rest/1/nope/scope.json") as resp:
        assert resp.status == 401
        assert (await resp.json())["error"] == "NO_AUTH_FOUND"
    status, body = await rest(http, fake_portal, "crm.deal.list")
    assert (status, body["error"]) == (404, "ERROR_METHOD_NOT_FOUND")


async def test_the_leaky_bucket_answers_503(http: aiohttp.ClientSession, demo_data: Any) -> None:
    async with FakePortal(demo_data, rate_limit=(3, 0.001)) as portal:
        answers = [await rest(http, portal, "scope") for _ in range(4)]
    assert [s for s, _ in answers] == [200, 200, 200, 503]
    assert answers[3][1] == {
        "error": "QUERY_LIMIT_EXCEEDED",
        "error_description": "Too many requests",
    }


async def test_users_departments_and_the_webhook_user(
    http: aiohttp.ClientSession, fake_portal: FakePortal
) -> None:
    _, body = await rest(http, fake_portal, "user.get", {"FILTER": {"UF_DEPARTMENT": 4}})
    assert [u["ID"] for u in body["result"]] == ["5", "8", "9"]
    assert "ADMIN" not in body["result"][0]
    _, body = await rest(http, fake_portal, "department.get", {"ID": 1})
    assert body["result"] == [
        {"ID": "1", "NAME": "ООО «Демо» (головная компания)", "SORT": 500, "UF_HEAD": "2"}
    ]
    _, body = await rest(http, fake_portal, "user.admin")
    assert body["result"] is True
    _, body = await rest(http, fake_portal, "scope")
    assert set(body["result"]) >= {"crm", "user", "department", "im"}


async def test_update_records_the_user_and_notifications_are_kept(
    http: aiohttp.ClientSession, fake_portal: FakePortal
) -> None:
    await rest(http, fake_portal, "crm.company.update", {"id": 10, "fields": {"TITLE": "X"}})
    _, body = await rest(http, fake_portal, "crm.company.get", {"id": 10})
    assert (body["result"]["TITLE"], body["result"]["MODIFY_BY_ID"]) == ("X", "1")
    fake_portal.update("company", 10, {"TITLE": "Y"}, by_user=7)
    assert fake_portal.store.record("company", 10)["MODIFY_BY_ID"] == "7"
    _, body = await rest(
        http,
        fake_portal,
        "im.notify.system.add",
        {"USER_ID": 7, "MESSAGE": "Only your head may change it"},
    )
    assert body["result"] == 1
    assert [(n.user_id, n.message) for n in fake_portal.notifications] == [
        ("7", "Only your head may change it")
    ]


async def test_userfields_can_be_created_on_a_portal_without_the_status_field(
    http: aiohttp.ClientSession, demo_data: Any
) -> None:
    async with FakePortal(demo_data, with_status_field=False) as portal:
        _, body = await rest(http, portal, "crm.company.userfield.list")
        assert body["result"] == []
        fields = {
            "FIELD_NAME": "CALLGUARD_STATUS",
            "USER_TYPE_ID": "enumeration",
            "LIST": [{"VALUE": "Pending", "XML_ID": "PENDING", "SORT": 10, "DEF": "Y"}],
        }
        _, body = await rest(http, portal, "crm.company.userfield.add", {"fields": fields})
        ident = body["result"]
        assert isinstance(ident, int)
        await rest(
            http,
            portal,
            "crm.company.userfield.update",
            {"id": ident, "fields": {"LIST": [{"VALUE": "Work", "XML_ID": "IN_WORK"}]}},
        )
        _, body = await rest(http, portal, "crm.company.userfield.get", {"id": ident})
        assert body["result"]["FIELD_NAME"] == "UF_CRM_CALLGUARD_STATUS"
        assert [i["XML_ID"] for i in body["result"]["LIST"]] == ["PENDING", "IN_WORK"]
        assert all(isinstance(i["ID"], str) for i in body["result"]["LIST"])
        status, body = await rest(http, portal, "crm.company.userfield.add", {"fields": fields})
        assert status == 400


@pytest.fixture
async def handler() -> AsyncIterator[tuple[str, asyncio.Queue[tuple[str, str]]]]:
    """A real HTTP endpoint that records what it receives (content type, raw body)."""
    received: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def accept(request: web.Request) -> web.Response:
        await received.put((request.content_type, await request.text()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/b24/events", accept)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/b24/events", received
    await runner.cleanup()


async def test_crm_changes_post_outgoing_webhook_form_bodies(
    fake_portal: FakePortal, handler: tuple[str, asyncio.Queue[tuple[str, str]]]
) -> None:
    url, received = handler
    fake_portal.subscribe(url, "tok3n", ["ONCRMCOMPANYUPDATE", "ONVOXIMPLANTCALLINIT"])
    fake_portal.set_company_status(10, "DECLINED", by_user=7)
    fake_portal.call_init("call.1", "+79991234567")
    [first, second] = await fake_portal.deliveries.wait(2, timeout())
    assert (first.status, second.status) == (200, 200)
    content_type, raw = await asyncio.wait_for(received.get(), timeout())
    assert content_type == "application/x-www-form-urlencoded"
    keys = [k for k, _ in parse_qsl(raw)]
    assert keys == [
        "event",
        "event_handler_id",
        "data[FIELDS][ID]",
        "ts",
        "auth[domain]",
        "auth[client_endpoint]",
        "auth[server_endpoint]",
        "auth[member_id]",
        "auth[application_token]",
    ]
    body = parse_query(raw)
    assert body["event"] == "ONCRMCOMPANYUPDATE"
    assert body["data"] == {"FIELDS": {"ID": "10"}}
    assert body["auth"]["application_token"] == "tok3n"
    assert body["auth"]["client_endpoint"] == fake_portal.url + "rest/"
    _, raw = await asyncio.wait_for(received.get(), timeout())
    call = parse_query(raw)
    assert call["event"] == "ONVOXIMPLANTCALLINIT"
    assert call["data"] == {
        "CALL_ID": "call.1",
        "CALL_TYPE": "2",
        "ACCOUNT_SEARCH_ID": "reg150908",
        "PHONE_NUMBER": "+74951112233",
        "CALLER_ID": "+79991234567",
    }


async def test_the_control_api_drives_faults_and_counters(
    http: aiohttp.ClientSession, fake_portal: FakePortal
) -> None:
    async def control(path: str, doc: Any = None) -> Any:
        async with http.post(fake_portal.url + "_fake/" + path, json=doc or {}) as resp:
            return await resp.json()

    await control(
        "fault", {"kind": "error", "method": "scope", "status": 500, "error": "ERROR_CORE"}
    )
    status, body = await rest(http, fake_portal, "scope")
    assert (status, body["error"]) == (500, "ERROR_CORE")
    assert (await rest(http, fake_portal, "scope"))[0] == 200
    async with http.get(fake_portal.url + "_fake/counters") as resp:
        assert (await resp.json())["requests"] == {"scope": 2}
    await control("reset")
    assert fake_portal.total_requests == 0
    assert (
        await control(
            "change",
            {"action": "update", "kind": "lead", "id": 40, "fields": {"TITLE": "Z"}, "by_user": 9},
        )
    )["ok"]
    assert fake_portal.store.record("lead", 40)["MODIFY_BY_ID"] == "9"
