"""The morning digest: when it runs (pure, fixed clocks, DST), and that each head gets one
notification a day with their departments' red calls, against the fake portal over REST and on
the data file, even with several processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from gateway.crm.client import BitrixClient
from gateway.crm.dataset import load_dataset
from gateway.ledger.access import Access
from gateway.ledger.digest import Digest, next_run
from gateway.ledger.org_datafile import DataFileOrg
from gateway.ledger.org_rest import RestOrg
from gateway.live.tokens import check_token
from gateway.store.database import Database
from gateway.store.ledger import Ledger, LedgerRow
from gateway.tools.fakeportal import FakePortal
from gateway.web.app import create_app
from tests.support import gateway_settings

MOSCOW = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
SECRET = "digest-tests-secret-0123456789abcdef"
DAY = date(2026, 3, 10)


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "at", "tz", "expected"),
    [
        (utc(2026, 3, 10, 4, 0), time(8, 0), MOSCOW, utc(2026, 3, 10, 5, 0)),  # later today
        (
            utc(2026, 3, 10, 5, 0),
            time(8, 0),
            MOSCOW,
            utc(2026, 3, 11, 5, 0),
        ),  # exactly now: tomorrow
        (utc(2026, 3, 10, 6, 0), time(8, 0), MOSCOW, utc(2026, 3, 11, 5, 0)),  # past: tomorrow
        (utc(2026, 3, 10, 22, 0), time(0, 30), MOSCOW, utc(2026, 3, 10, 21, 30).replace(day=11)),
        # Berlin springs forward on 2026-03-29 02:00 -> 03:00: 08:00 is 06:00 UTC from then on.
        (utc(2026, 3, 28, 12, 0), time(8, 0), BERLIN, utc(2026, 3, 29, 6, 0)),
        (utc(2026, 3, 27, 12, 0), time(8, 0), BERLIN, utc(2026, 3, 28, 7, 0)),
        # 02:30 does not exist that night: run at 03:30 CEST, an hour after 01:30 CET.
        (utc(2026, 3, 28, 12, 0), time(2, 30), BERLIN, utc(2026, 3, 29, 1, 30)),
        # Falls back on 2026-10-25 03:00 -> 02:00: 02:30 happens twice, the first one runs.
        (utc(2026, 10, 24, 12, 0), time(2, 30), BERLIN, utc(2026, 10, 25, 0, 30)),
        (utc(2026, 10, 25, 0, 45), time(2, 30), BERLIN, utc(2026, 10, 26, 1, 30)),
    ],
)
def test_next_run(now: datetime, at: time, tz: ZoneInfo, expected: datetime) -> None:
    assert next_run(now, at, tz) == expected


def red(call_id: str, caller: str, at: datetime) -> LedgerRow:
    return LedgerRow(
        at, call_id, caller, "out", "ws", "red", "other_manager_active", "company", "10",
        "ООО «Ромашка»", "6", "Анна Смирнова", "4567",
    )  # fmt: skip


@pytest.fixture
async def database(sqlite_url: str) -> AsyncIterator[Database]:
    db = Database(sqlite_url)
    await db.open()
    try:
        # Demo tree: 1 (head 2) > 2 (head 3) > 3 (head 4: users 4, 6, 7), 4 (head 5: 5, 8, 9).
        await Ledger(db).write(
            [
                red("a", "7", datetime(2026, 3, 10, 9, tzinfo=MOSCOW)),
                red("b", "7", datetime(2026, 3, 10, 23, 59, tzinfo=MOSCOW)),
                red("c", "8", datetime(2026, 3, 10, 0, 1, tzinfo=MOSCOW)),
                red("d", "8", datetime(2026, 3, 9, 23, 59, tzinfo=MOSCOW)),  # the day before
                red("e", "8", datetime(2026, 3, 11, 0, 0, tzinfo=MOSCOW)),  # the day after
            ]
        )
        yield db
    finally:
        await db.close()


def digest(db: Database, access: Access, lang: str = "ru") -> Digest:
    return Digest(
        Ledger(db),
        access,
        at=time(8, 0),
        tz=MOSCOW,
        lang=lang,
        public_url="https://gateway.example/",
        secret=SECRET,
    )


async def test_each_head_is_notified_once_over_rest(database: Database, sqlite_url: str) -> None:
    async with FakePortal() as fake:
        client = BitrixClient(fake.webhook_url)
        try:
            access = Access(RestOrg(client), admins=())
            assert await digest(database, access).send(DAY) == 4
            # Another process, its own connection to the same database: the day is taken.
            other = Database(sqlite_url)
            await other.open()
            try:
                assert await digest(other, access).send(DAY) == 0
            finally:
                await other.close()
            assert await digest(database, access).send(DAY) == 0
        finally:
            await client.close()
        notes = {n.user_id: n.message for n in fake.notifications}
    assert sorted(notes) == ["2", "3", "4", "5"]
    assert len(fake.notifications) == 4
    assert notes["4"].startswith("Красные звонки в ваших отделах за 10.03.2026: 2. ")
    assert "Пётр Кузнецов — 2" in notes["4"]
    assert "Дмитрий Волков" not in notes["4"]  # another department
    assert notes["5"].startswith("Красные звонки в ваших отделах за 10.03.2026: 1. ")
    assert "Дмитрий Волков — 1" in notes["5"]
    assert "за 10.03.2026: 3. Чаще всех: Пётр Кузнецов — 2, Дмитрий Волков — 1." in notes["3"]
    link = urlsplit(notes["4"].split("Отчёт: ")[1])
    assert (link.scheme, link.netloc, link.path) == ("https", "gateway.example", "/report")
    query = parse_qs(link.query)
    assert (query["from"], query["to"]) == (["2026-03-10"], ["2026-03-10"])
    assert check_token(SECRET, query["token"][0]).user_id == "4"


async def test_on_the_data_file_it_goes_to_the_notifications_list(database: Database) -> None:
    org = DataFileOrg(load_dataset())
    sent = await digest(database, Access(org, admins=()), lang="en").send(date(2026, 3, 11))
    assert sent == 3  # only user 8's call at midnight: heads 5, 3 and 2
    notes = {n.user_id: n.message for n in org.portal.notifications}
    assert sorted(notes) == ["2", "3", "5"]
    assert notes["5"].startswith("Red calls in your departments on 2026-03-11: 1. Top callers: ")


async def test_a_day_without_red_calls_notifies_nobody(database: Database) -> None:
    org = DataFileOrg(load_dataset())
    assert await digest(database, Access(org, admins=())).send(date(2026, 3, 1)) == 0
    assert list(org.portal.notifications) == []


def test_the_app_sends_a_digest_only_when_asked() -> None:
    assert create_app(gateway_settings()).state.digest is None
    assert create_app(gateway_settings(digest_at="08:00")).state.digest is not None
    off = create_app(gateway_settings(digest_at="08:00", ledger_days=0))
    assert off.state.digest is None
    assert off.state.gateway.recorder is None
    assert off.state.gateway.calls.ledger is None
