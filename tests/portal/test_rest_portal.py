"""The gateway on the fake portal's REST API, with the fake portal posting its real form-encoded
events: pre-warm, cache invalidation, and the company status lifecycle."""

import json

import pytest

from gateway.run.runtime import Gateway
from gateway.tools.fakeportal import FakePortal
from tests.portal.conftest import Tab, open_tab, rest_gateway, settle

RED_PHONE = "+7 (495) 123-45-67"  # ООО «Ромашка» (company 10): IN_WORK with user 6 (Moscow, head 4)
RED_KEY = "+74951234567"
CONTACT_PHONE = "8 916 000-11-22"  # Пётр Иванов (contact 20), linked to company 10


async def call(tab: Tab, call_id: str, phone: str) -> dict[str, object]:
    await tab.socket.send(json.dumps({"type": "call", "call_id": call_id, "phone": phone}))
    return await tab.next("paint")


async def test_a_call_right_after_its_init_costs_no_rest_requests(fake: FakePortal) -> None:
    async with rest_gateway(fake) as gw, open_tab(gw.url, "7") as tab:
        fake.call_init("c1", RED_PHONE)
        await settle(fake, gw, 1)
        gateway: Gateway = gw.app.state.gateway
        await gateway.directory.lookup(RED_KEY)  # joins the pre-warm lookup, or hits the cache
        assert fake.requests.get("crm.duplicate.findbycomm")  # the init did look the number up
        before = fake.total_requests
        paint = await call(tab, "c1", RED_PHONE)
        assert (paint["call_id"], paint["colour"]) == ("c1", "red")
        fake.call_start("c1", 7)  # the portal's start of the same call: nothing new to do
        await settle(fake, gw, 2)
        assert fake.total_requests == before
        # Without an init, a call costs REST requests.
        await call(tab, "c2", "+7 926 111 22 33")
        assert fake.total_requests > before


async def test_a_status_change_shows_on_the_next_call_at_once(fake: FakePortal) -> None:
    async with rest_gateway(fake, cache_ttl=3600.0) as gw, open_tab(gw.url, "7") as tab:
        assert (await call(tab, "c1", RED_PHONE))["colour"] == "red"
        fake.set_company_status(10, "DECLINED", by_user=4)  # the head of Moscow
        # The open call is decided again, and the next call sees it: no TTL wait.
        paint = await tab.next("paint")
        assert (paint["call_id"], paint["colour"]) == ("c1", "none")
        assert (await call(tab, "c2", RED_PHONE))["colour"] == "none"


async def test_a_contact_phone_change_shows_on_the_next_call_at_once(fake: FakePortal) -> None:
    new_phone = "+7 999 000-77-66"
    async with (
        rest_gateway(fake, cache_ttl=3600.0, negative_ttl=3600.0) as gw,
        open_tab(gw.url, "7") as tab,
    ):
        assert (await call(tab, "old", CONTACT_PHONE))["colour"] == "red"  # via company 10
        assert (await call(tab, "new", new_phone))["colour"] == "none"  # cached as nothing found
        [item] = fake.store.record("contact", 20)["PHONE"]
        fake.update("contact", 20, {"PHONE": [{"ID": item["ID"], "VALUE": new_phone}]}, by_user=6)
        await settle(fake, gw, 1)
        assert (await call(tab, "old-2", CONTACT_PHONE))["colour"] == "none"
        assert (await call(tab, "new-2", new_phone))["colour"] == "red"


# Demo data: 1 is listed in CALLGUARD_ADMINS; departments 1 (head 2) > 2 (head 3) > 3 Moscow (head 4)
# and 4 regions (head 5). Company 10 is managed by 6 (Moscow); 7 is 6's peer.
@pytest.mark.parametrize(
    ("actor", "reverted"),
    [
        pytest.param("4", False, id="department-head"),
        pytest.param("3", False, id="parent-department-head"),
        pytest.param("2", False, id="root-head"),
        pytest.param("1", False, id="administrator"),
        pytest.param("7", True, id="peer"),
        pytest.param("6", True, id="responsible-manager"),
        pytest.param("5", True, id="other-department-head"),
    ],
)
async def test_status_lifecycle(fake: FakePortal, actor: str, reverted: bool) -> None:
    async with rest_gateway(fake, admins=("1",)) as gw:
        fake.update("company", 10, {"COMMENTS": "first event: IN_WORK is recorded"}, by_user=6)
        await settle(fake, gw, 1)
        fake.set_company_status(10, "DECLINED", by_user=actor)
        if reverted:
            await settle(fake, gw, 3)  # the change, then the gateway's own revert
            assert fake.company_status(10) == "IN_WORK"
            [note] = fake.notifications
            assert note.user_id == actor
            assert "«Отказ» возвращён на «В работе»" in note.message
            assert "(Сергей Москвин, Марина Руководова, Игорь Директоров)" in note.message
            assert "(The status of company “ООО «Ромашка»” was not changed" in note.message
        else:
            await settle(fake, gw, 2)
            assert fake.company_status(10) == "DECLINED"
            assert fake.notifications == []
        # No loop: one REST update at most (the revert), and no event after it.
        assert fake.requests.get("crm.company.update", 0) == (1 if reverted else 0)
        assert len(fake.deliveries.items) == (3 if reverted else 2)


async def test_a_manager_who_heads_the_department_needs_the_head_above(fake: FakePortal) -> None:
    async with rest_gateway(fake) as gw:
        fake.update("company", 10, {"ASSIGNED_BY_ID": "4"}, by_user=1)  # Сергей heads Moscow
        await settle(fake, gw, 1)
        fake.set_company_status(10, "DECLINED", by_user=4)
        await settle(fake, gw, 3)
        assert fake.company_status(10) == "IN_WORK"
        fake.set_company_status(10, "DECLINED", by_user=3)
        await settle(fake, gw, 4)
        assert fake.company_status(10) == "DECLINED"


async def test_new_companies_get_pending(fake: FakePortal) -> None:
    async with rest_gateway(fake) as gw:
        created = fake.add("company", {"TITLE": "ООО «Новая»", "ASSIGNED_BY_ID": "7"}, by_user=7)
        await settle(fake, gw, 2)  # the add, then the gateway setting PENDING
        assert fake.company_status(created) == "PENDING"
        # Converted from a lead: the portal creates the company from the lead's data.
        converted = fake.add(
            "company",
            {
                "TITLE": "Заявка с сайта",
                "ASSIGNED_BY_ID": "9",
                "LEAD_ID": "30",
                "PHONE": [{"VALUE": "+79160001122"}],
            },
            by_user=9,
        )
        await settle(fake, gw, 4)
        assert fake.company_status(converted) == "PENDING"
        assert fake.notifications == []
        # A manager cannot create a company already "in work".
        chosen = fake.add(
            "company",
            {
                "TITLE": "ООО «Сразу в работе»",
                "ASSIGNED_BY_ID": "7",
                fake.status_field: fake.status_item("IN_WORK"),
            },
            by_user=7,
        )
        await settle(fake, gw, 6)
        assert fake.company_status(chosen) == "PENDING"
        [note] = fake.notifications
        assert note.user_id == "7"
        assert "«В работе» возвращён на «В ожидании»" in note.message


async def test_approved_statuses_survive_a_restart(fake: FakePortal, database_url: str) -> None:
    async with rest_gateway(fake, database_url=database_url) as gw:
        fake.update("company", 10, {"COMMENTS": "first event"}, by_user=6)
        await settle(fake, gw, 1)
        fake.set_company_status(10, "DECLINED", by_user=4)
        await settle(fake, gw, 2)
    fake.deliveries.clear()
    # A new gateway over the same database: the peer's change right after the start is judged
    # against the approved DECLINED, not taken as the baseline.
    async with rest_gateway(fake, database_url=database_url) as gw:
        fake.set_company_status(10, "IN_WORK", by_user=6)  # the manager puts it back in work
        await settle(fake, gw, 2)
        assert fake.company_status(10) == "DECLINED"
        assert [n.user_id for n in fake.notifications] == ["6"]


async def test_a_portal_without_the_status_field_is_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakePortal(with_status_field=False) as fake, rest_gateway(fake) as gw:
        created = fake.add("company", {"TITLE": "ООО «Новая»", "ASSIGNED_BY_ID": "7"}, by_user=7)
        await settle(fake, gw, 1)
    [line] = [r for r in caplog.records if r.name == "callguard.webhooks"]
    assert line.getMessage() == (
        f"company {created}: status not checked: crm.company.userfield.list: -: "
        "no company field UF_CRM_CALLGUARD_STATUS: run callguard setup-portal"
    )
    assert line.exc_info is None
