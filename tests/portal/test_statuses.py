"""The status lifecycle: who may change a status (pure, by tables) and the guard over the data file."""

import pytest

from gateway.crm.dataset import load_dataset
from gateway.portal.approved import MemoryStore
from gateway.portal.status_datafile import DataFileStatusPortal, UnknownEntity
from gateway.portal.statuses import Department, StatusGuard, approvers, judge
from rules import load_policy

# 1 root (head 10) > 2 sales (head 20) > 3 moscow (head 30), 4 regions (no head) > 5 far (head 50)
TREE = {
    "1": Department("1", None, "10"),
    "2": Department("2", "1", "20"),
    "3": Department("3", "2", "30"),
    "4": Department("4", "2", None),
    "5": Department("5", "4", "50"),
}


@pytest.mark.parametrize(
    ("responsible", "departments", "expected"),
    [
        ("7", ["3"], ("30", "20", "10")),
        ("30", ["3"], ("20", "10")),  # a head is not their own head
        ("20", ["3"], ("30", "10")),  # heads a department above their own: still not their own
        ("7", ["5"], ("50", "20", "10")),  # a department without a head is skipped, not a stop
        ("7", ["4"], ("20", "10")),
        ("7", ["3", "5"], ("30", "20", "10", "50")),  # several departments: all chains, no repeats
        ("7", ["1"], ("10",)),
        ("10", ["1"], ()),  # the root's head has nobody above
        ("7", [], ()),
        ("7", ["99"], ()),  # unknown department
    ],
)
def test_approvers(responsible: str, departments: list[str], expected: tuple[str, ...]) -> None:
    assert approvers(responsible, departments, TREE) == expected


def test_approvers_survive_a_cycle() -> None:
    tree = {"1": Department("1", "2", "10"), "2": Department("2", "1", "20")}
    assert approvers("7", ["1"], tree) == ("10", "20")


@pytest.mark.parametrize(
    ("actor", "responsible", "heads", "admins", "allowed", "why"),
    [
        ("30", "7", ("30", "20"), (), True, "user 30 is a head above the responsible manager 7"),
        ("20", "7", ("30", "20"), (), True, "user 20 is a head above the responsible manager 7"),
        ("1", "7", ("30",), ("1",), True, "user 1 is a portal administrator"),
        ("1", "1", (), ("1",), True, "user 1 is a portal administrator"),
        ("8", "7", ("30",), ("1",), False, "user 8 is not a head above the responsible manager 7"),
        ("7", "7", ("30",), (), False, "user 7 is the responsible manager"),
        (
            "50",
            "7",
            ("30", "20"),
            (),
            False,
            "user 50 is not a head above the responsible manager 7",
        ),
        (None, "7", ("30",), (), False, "the portal did not say who changed it"),
    ],
)
def test_judge(
    actor: str | None,
    responsible: str,
    heads: tuple[str, ...],
    admins: tuple[str, ...],
    allowed: bool,
    why: str,
) -> None:
    verdict = judge(actor, responsible, heads, admins)
    assert (verdict.allowed, verdict.why) == (allowed, why)


# The bundled demo data: 1 admin; dept 1 (head 2) > 2 (head 3) > 3 Moscow (head 4) and 4 regions (head 5).
# Company 10 "ООО «Ромашка»" is IN_WORK with manager 6 (Moscow); 7 is 6's peer; 5 heads another department.
@pytest.mark.parametrize(
    ("as_user", "action", "final"),
    [
        ("4", "approved", "DECLINED"),  # head of the manager's department
        ("3", "approved", "DECLINED"),  # head of the parent department
        ("2", "approved", "DECLINED"),  # head of the root
        ("1", "approved", "DECLINED"),  # administrator
        ("7", "reverted", "IN_WORK"),  # peer
        ("6", "reverted", "IN_WORK"),  # the responsible manager
        ("5", "reverted", "IN_WORK"),  # another department's head
    ],
)
async def test_guard_over_the_data_file(as_user: str, action: str, final: str) -> None:
    data = load_dataset()
    portal = DataFileStatusPortal(data)
    guard = StatusGuard(portal, MemoryStore(), load_policy(), admins=("1",))
    outcome = await portal.change_status(guard, "10", "DECLINED", as_user)
    assert (outcome.action, outcome.status, data.companies["10"].status) == (action, final, final)
    if action == "reverted":
        [note] = portal.notifications
        assert note.user_id == as_user
        assert note.message == outcome.notified
        assert "«ООО «Ромашка»»" in note.message
        assert "«Отказ» возвращён на «В работе»" in note.message
        assert "Сергей Москвин, Марина Руководова, Игорь Директоров" in note.message
        assert "The status" not in note.message  # one language: the portal's (ru by default)
    else:
        assert not portal.notifications
    # The next change is judged against what is approved now: nothing moves if nobody changes it.
    again = await guard.on_change("10")
    assert (again.action, data.companies["10"].status) == ("unchanged", final)


async def test_a_responsible_head_needs_the_head_above() -> None:
    data = load_dataset()
    data.companies["10"].assigned_by = "4"  # Сергей heads Moscow himself
    portal = DataFileStatusPortal(data)
    guard = StatusGuard(portal, MemoryStore(), load_policy(), admins=())
    assert (await portal.change_status(guard, "10", "DECLINED", "4")).action == "reverted"
    assert (await portal.change_status(guard, "10", "DECLINED", "3")).action == "approved"


async def test_new_companies_get_the_initial_status() -> None:
    data = load_dataset()
    portal = DataFileStatusPortal(data)
    guard = StatusGuard(portal, MemoryStore(), load_policy(), admins=("1",))
    data.companies["17"].status = None  # ПАО «Меридиан», as if just created or converted
    outcome = await guard.on_change("17", created=True)
    assert (outcome.action, data.companies["17"].status) == ("initial", "PENDING")
    assert not portal.notifications
    assert (await guard.on_change("17")).action == "unchanged"


async def test_created_with_a_status_only_a_head_may_choose() -> None:
    data = load_dataset()
    portal = DataFileStatusPortal(data)
    store = MemoryStore()
    guard = StatusGuard(portal, store, load_policy(), admins=())
    await portal.change_status(guard, "17", "IN_WORK", "7")  # 7 manages 17 and cannot choose
    data.companies["17"].status = "IN_WORK"  # as if 7 had created it so
    await store.forget("17")
    outcome = await guard.on_change("17", created=True)
    assert (outcome.action, data.companies["17"].status) == ("reverted", "PENDING")
    assert "«В работе» возвращён на «В ожидании»" in portal.notifications[-1].message


async def test_first_sight_bootstraps_and_gone_forgets() -> None:
    data = load_dataset()
    portal = DataFileStatusPortal(data)
    store = MemoryStore()
    guard = StatusGuard(portal, store, load_policy(), admins=())
    outcome = await guard.on_change("14")
    assert (outcome.action, await store.get("14")) == ("bootstrap", "DECLINED")
    del data.companies["14"]
    assert (await guard.on_change("14")).action == "gone"
    assert await store.get("14") is None
    await guard.on_delete("14")


async def test_clearing_a_status_is_a_change_too() -> None:
    data = load_dataset()
    portal = DataFileStatusPortal(data)
    guard = StatusGuard(portal, MemoryStore(), load_policy(), admins=())
    outcome = await portal.change_status(guard, "10", None, "6")
    assert (outcome.action, data.companies["10"].status) == ("reverted", "IN_WORK")
    assert "«без статуса» возвращён на «В работе»" in portal.notifications[-1].message
    # An approved "no status" is restored as no status.
    assert (await portal.change_status(guard, "17", "IN_WORK", "6")).status is None


async def test_unknown_company_or_user() -> None:
    portal = DataFileStatusPortal(load_dataset())
    guard = StatusGuard(portal, MemoryStore(), load_policy(), admins=())
    with pytest.raises(UnknownEntity, match=r"^no company with id 999$"):
        await portal.change_status(guard, "999", "IN_WORK", "1")
    with pytest.raises(UnknownEntity, match=r"^no user with id 999$"):
        await portal.change_status(guard, "10", "IN_WORK", "999")


async def test_an_english_portal_gets_its_notifications_in_english() -> None:
    data = load_dataset()
    portal = DataFileStatusPortal(data)
    guard = StatusGuard(portal, MemoryStore(), load_policy(), admins=(), lang="en")
    outcome = await portal.change_status(guard, "10", "DECLINED", "7")
    assert outcome.action == "reverted"
    [note] = portal.notifications
    assert note.message.startswith("The status of company “ООО «Ромашка»” was not changed")
    assert "“Declined” was reverted to “In work”" in note.message
    assert "Статус" not in note.message
