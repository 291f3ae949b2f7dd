"""``callguard setup-portal`` against the fake portal: creates the field once, ``--check`` lists
what is missing. The command runs as a real subprocess; the portal runs in the test's loop."""

import asyncio
import os
import sys
from pathlib import Path

import pytest

from gateway.crm.client import BitrixClient
from gateway.portal.setup import INIT_CONFIG, INIT_PHP, Setup, instructions
from gateway.store.approved import ApprovedStatuses
from gateway.store.database import Database
from gateway.store.url import mask
from gateway.tools.fakeportal import FakePortal
from rules import load_policy
from tests.portal.conftest import rest_gateway, settle
from tests.timing import timeout

FIELD = "UF_CRM_CALLGUARD_STATUS"
ROOT = Path(__file__).resolve().parents[2]


async def setup_portal(*args: str, portal: FakePortal | None = None, **env: str) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CALLGUARD_")}
    if portal is not None:
        clean["CALLGUARD_PORTAL_URL"] = portal.webhook_url
    clean.update(env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "setup-portal",
        *args,
        cwd=ROOT,
        env=clean,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(timeout(4)):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def field_of(portal: FakePortal) -> dict[str, object] | None:
    return portal.store.userfields_by_name().get(FIELD)


async def test_creates_the_field_once_then_changes_nothing() -> None:
    async with FakePortal(with_status_field=False) as portal:
        code, out = await setup_portal(portal=portal, CALLGUARD_PUBLIC_URL="https://cg.example.ru")
        assert code == 0, out
        assert f"created the company field {FIELD}" in out
        field = field_of(portal)
        assert field is not None
        assert field["USER_TYPE_ID"] == "enumeration"
        items = [(i["XML_ID"], i["VALUE"]) for i in field["LIST"]]  # type: ignore[index]
        assert items == [("PENDING", "В ожидании"), ("IN_WORK", "В работе"), ("DECLINED", "Отказ")]
        # What to do by hand: the outgoing webhook and init.php, and never the webhook code.
        assert "Handler URL: https://cg.example.ru/bitrix/events" in out
        assert "ONVOXIMPLANTCALLINIT" in out
        assert "ONCRMCOMPANYUPDATE" in out
        assert "CALLGUARD_WEBHOOK_TOKEN" in out
        assert "define('CALLGUARD_URL', 'https://cg.example.ru');" in out
        assert "callguard_token(CALLGUARD_SECRET, (string)$USER->GetID())" in out
        assert portal.code not in out
        assert "/rest/1/***/" in out
        assert portal.requests.get("crm.company.userfield.add") == 1

        code, out = await setup_portal(portal=portal)
        assert code == 0, out
        assert "is in place; nothing to do" in out
        assert "Handler URL: https://<gateway>/bitrix/events" in out
        assert portal.requests.get("crm.company.userfield.add") == 1
        assert "crm.company.userfield.update" not in portal.requests
        assert [i["XML_ID"] for i in field_of(portal)["LIST"]] == ["PENDING", "IN_WORK", "DECLINED"]  # type: ignore[index]


async def test_check_passes_on_a_good_portal() -> None:
    async with FakePortal() as portal:
        code, out = await setup_portal("--check", portal=portal)
    assert code == 0, out
    assert out.rstrip().endswith("all present")
    assert "MISSING" not in out


async def test_check_reports_a_missing_field() -> None:
    async with FakePortal(with_status_field=False) as portal:
        code, out = await setup_portal("--check", portal=portal)
        assert code == 1, out
        assert f"MISSING: no company field {FIELD}: run callguard setup-portal" in out
        assert field_of(portal) is None  # --check changes nothing


async def test_check_reports_a_missing_list_item_and_setup_adds_it() -> None:
    async with FakePortal() as portal:
        field = field_of(portal)
        assert field is not None
        field["LIST"] = [i for i in field["LIST"] if i["XML_ID"] != "DECLINED"]  # type: ignore[attr-defined]
        code, out = await setup_portal("--check", portal=portal)
        assert code == 1, out
        assert f"MISSING: {FIELD} has no list item with XML_ID DECLINED (status 'Отказ')" in out
        code, out = await setup_portal(portal=portal)
        assert code == 0, out
        assert f"added list items DECLINED to {FIELD}" in out
        code, out = await setup_portal("--check", portal=portal)
        assert code == 0, out


async def test_check_reports_missing_scopes() -> None:
    async with FakePortal(scopes=("crm", "user")) as portal:
        code, out = await setup_portal("--check", portal=portal)
    assert code == 1, out
    for scope in ("department", "im", "telephony"):
        assert f"MISSING: the incoming webhook lacks the scope '{scope}'" in out
    assert "scope crm: ok" in out


async def test_bad_input_is_one_line_and_exit_2() -> None:
    code, out = await setup_portal()
    assert (code, out) == (
        2,
        "callguard setup-portal: no portal: set CALLGUARD_PORTAL_URL or pass --portal URL\n",
    )
    code, out = await setup_portal("--portal", "https://portal.example.ru/")
    assert code == 2
    assert out.startswith("callguard setup-portal: --portal must be the incoming webhook URL")
    async with FakePortal() as portal:
        code, out = await setup_portal("--portal", portal.url + "rest/1/wrong-code/")
    assert code == 2
    assert "NO_AUTH_FOUND" in out
    assert "wrong-code" not in out


@pytest.mark.parametrize("public", [None, "https://cg.example.ru/"])
def test_instructions_fill_in_the_public_url(public: str | None) -> None:
    text = instructions(public, "https://portal.example.ru/rest/1/secretcode/")
    assert "secretcode" not in text
    base = "https://cg.example.ru" if public else "https://<gateway>"
    assert f"Handler URL: {base}/bitrix/events" in text
    assert text.endswith(INIT_PHP)


def test_the_printed_php_is_the_php_in_the_install_guide() -> None:
    doc = (ROOT / "docs" / "install-box.md").read_text(encoding="utf-8")
    assert f"```php\n{INIT_PHP}```" in doc
    assert f"```php\n{INIT_CONFIG}```" in doc


async def test_current_statuses_are_recorded_so_the_first_change_is_judged(
    database_url: str,
) -> None:
    async with FakePortal() as portal:
        code, out = await setup_portal(portal=portal, CALLGUARD_DATABASE_URL=database_url)
        assert code == 0, out
        where = mask(database_url)
        assert (
            f"recorded the current status of 10 companies as approved (0 already had one) in {where}"
            in out
        )
        code, out = await setup_portal(portal=portal, CALLGUARD_DATABASE_URL=database_url)
        assert "recorded the current status of 0 companies as approved (10 already had one)" in out
        database = Database(database_url)
        await database.open()
        try:
            statuses = ApprovedStatuses(database)
            assert await statuses.get("10") == "IN_WORK"
            assert await statuses.get("17") == ""  # no status is a status too
        finally:
            await database.close()
        # A gateway's very first event about company 10 is judged against IN_WORK.
        async with rest_gateway(portal, database_url=database_url) as gw:
            portal.set_company_status(10, "DECLINED", by_user=6)
            await settle(portal, gw, 2)
            assert portal.company_status(10) == "IN_WORK"


async def test_without_a_database_url_the_baseline_goes_to_the_state_directory(
    tmp_path: Path,
) -> None:
    async with FakePortal() as portal:
        code, out = await setup_portal(portal=portal, CALLGUARD_STATE_DIR=str(tmp_path))
    assert code == 0, out
    file = tmp_path / "callguard.sqlite3"
    assert f"companies as approved (0 already had one) in sqlite:///{file}" in out
    assert file.is_file()


async def test_an_unusable_database_stops_setup_before_the_portal_is_touched(
    tmp_path: Path,
) -> None:
    (tmp_path / "plain-file").write_text("not a directory")
    async with FakePortal(with_status_field=False) as portal:
        code, out = await setup_portal(
            portal=portal, CALLGUARD_STATE_DIR=str(tmp_path / "plain-file" / "state")
        )
        assert code == 2
        assert "CALLGUARD_DATABASE_URL: cannot create the directory" in out
        assert "Traceback" not in out
        assert field_of(portal) is None


async def test_setup_in_process_reports_what_it_did() -> None:
    """The same steps without a subprocess: what apply() and check() report."""
    async with FakePortal(
        with_status_field=False, scopes=("crm", "user", "department", "im")
    ) as portal:
        client = BitrixClient(portal.webhook_url)
        setup = Setup(client, load_policy(), FIELD)
        try:
            assert (await setup.check()).missing == [
                "the incoming webhook lacks the scope 'telephony'",
                f"no company field {FIELD}: run callguard setup-portal",
            ]
            [done] = (await setup.apply()).done
            assert done.startswith(f"created the company field {FIELD} (id ")
            assert (await setup.apply()).done == [
                f"the company field {FIELD} is in place; nothing to do"
            ]
            field = field_of(portal)
            assert field is not None
            field["LIST"].append({"ID": "99", "VALUE": "Архив", "XML_ID": "ARCHIVE"})  # type: ignore[attr-defined]
            report = await setup.check()
            assert report.missing == ["the incoming webhook lacks the scope 'telephony'"]
            assert (
                "note: list item 'Архив' (XML_ID ARCHIVE) is not in the rules file; companies holding it are judged as having an unknown status"
                in report.done
            )
        finally:
            await client.close()
