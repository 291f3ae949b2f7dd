"""GET /report and /report.csv in process: who may see what (administrators everything, heads
their departments and below, others 403, no valid token 401), the CSV's columns, the page.

Demo tree (gateway/crm/demo.json): department 1 (head 2) > 2 (head 3) > 3 (head 4: users 4,
6, 7) and 4 (head 5: users 5, 8, 9). User 1 is the data file's administrator.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from starlette.testclient import TestClient

from gateway.ledger.report import CSV_COLUMNS
from gateway.live.tokens import issue_token
from gateway.run.config import Settings
from gateway.run.runtime import Gateway
from gateway.store.ledger import LedgerRow
from gateway.web.app import create_app
from tests.live.conftest import API_KEY, RED_PHONE, token_for
from tests.support import TEST_SECRET, gateway_settings

PATHS = ("/report", "/report.csv")
# An administrator's token that expired an hour ago (well past the 60 s leeway).
EXPIRED = issue_token(TEST_SECRET, "1", 600.0, now=time.time() - 3600.0)


@pytest.fixture
def settings() -> Settings:
    return gateway_settings(api_key=API_KEY, admins=("9",))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        for caller, call_id in (("7", "call-moscow"), ("8", "call-regions")):
            body = {"user_id": caller, "call_id": call_id, "phone": RED_PHONE, "direction": "out"}
            answer = test_client.post(
                "/api/calls", json=body, headers={"Authorization": f"Bearer {API_KEY}"}
            )
            assert answer.json()["colour"] == "red"
        flush(test_client)
        yield test_client


def gateway_of(client: TestClient) -> Gateway:
    gateway: Gateway = client.app.state.gateway  # type: ignore[attr-defined]
    return gateway


def flush(client: TestClient) -> None:
    recorder = gateway_of(client).recorder
    assert recorder is not None
    client.portal.call(recorder.flush)  # type: ignore[union-attr]


def seen(client: TestClient, user: str, **params: str) -> list[dict[str, str]]:
    answer = client.get("/report.csv", params={"token": token_for(user), **params})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(answer.text)))


def callers(client: TestClient, user: str) -> list[str]:
    return sorted(r["caller_id"] for r in seen(client, user))


def test_csv_has_the_contract_columns_and_no_full_number(client: TestClient) -> None:
    answer = client.get("/report.csv", headers={"Authorization": f"Bearer {token_for('1')}"})
    header, *_ = answer.text.splitlines()
    assert header == ",".join(CSV_COLUMNS)
    rows = seen(client, "1")
    moscow = next(r for r in rows if r["call_id"] == "call-moscow")
    assert moscow["caller_name"] == "Пётр Кузнецов"
    assert (moscow["colour"], moscow["direction"], moscow["owner_id"]) == ("red", "out", "6")
    assert moscow["owner_name"] == "Анна Смирнова"
    assert moscow["entity_type"] == "company"
    assert moscow["entity_title"]
    assert moscow["phone_last4"] == "4567"
    assert "1234567" not in answer.text


def test_administrators_see_every_call(client: TestClient) -> None:
    assert callers(client, "1") == ["7", "8"]  # the data file's administrator
    assert callers(client, "9") == ["7", "8"]  # CALLGUARD_ADMINS


def test_heads_see_their_departments_and_those_below_only(client: TestClient) -> None:
    assert callers(client, "4") == ["7"]  # head of Moscow sales
    assert callers(client, "5") == ["8"]  # head of the regions
    assert callers(client, "3") == ["7", "8"]  # head of both, one level up
    assert callers(client, "2") == ["7", "8"]  # the top


@pytest.mark.parametrize("path", PATHS)
def test_a_manager_gets_403(client: TestClient, path: str) -> None:
    answer = client.get(path, params={"token": token_for("7")})
    assert answer.status_code == 403
    assert answer.json()["error"] == "forbidden"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "auth",
    [
        {},
        {"params": {"token": "not-a-token"}},
        {"headers": {"Authorization": "Bearer not-a-token"}},
        {"params": {"token": EXPIRED}},
    ],
)
def test_no_valid_token_gets_401(
    client: TestClient, path: str, auth: dict[str, dict[str, str]]
) -> None:
    answer = client.get(path, **auth)  # type: ignore[arg-type]
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["error"] == "unauthorized"


def test_bad_dates_and_colours_are_400(client: TestClient) -> None:
    token = token_for("1")
    for params in (
        {"from": "yesterday"},
        {"from": "2026-03-10", "to": "2026-03-01"},
        {"colour": "pink"},
    ):
        answer = client.get("/report.csv", params={"token": token, **params})
        assert answer.status_code == 400, params
        assert answer.json()["error"] == "bad_request"


def test_dates_colour_and_range_select_calls(client: TestClient) -> None:
    gateway = gateway_of(client)
    day = datetime(2026, 3, 10, 21, 30, tzinfo=UTC)  # 00:30 on the 11th in Moscow
    row = LedgerRow(
        day, "late", "7", "in", "api", "green", None, None, None, None, None, None, "0001"
    )
    client.portal.call(gateway.ledger.write, [row])  # type: ignore[union-attr]
    assert seen(client, "1", **{"from": "2026-03-11", "to": "2026-03-11"}) == []  # only red
    moscow_day = seen(client, "1", **{"from": "2026-03-11", "to": "2026-03-11", "colour": "all"})
    assert [r["call_id"] for r in moscow_day] == ["late"]
    assert moscow_day[0]["time"] == "2026-03-11T00:30:00+03:00"
    assert seen(client, "1", **{"from": "2026-03-10", "to": "2026-03-10", "colour": "all"}) == []


def test_the_page_escapes_names_and_speaks_the_asked_language(client: TestClient) -> None:
    gateway = gateway_of(client)
    now = datetime.now(UTC) - timedelta(minutes=1)
    row = LedgerRow(
        now, "x", "8", "out", "api", "red", "r", "company", "99",
        "<script>alert(1)</script>", "6", "<b>Анна</b>", "0002",
    )  # fmt: skip
    client.portal.call(gateway.ledger.write, [row])  # type: ignore[union-attr]
    page = client.get("/report", params={"token": token_for("3"), "lang": "en"})
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "&lt;b&gt;Анна&lt;/b&gt;" in page.text
    assert "Red calls per day" in page.text
    assert '<html lang="en">' in page.text
    red_days = {r["time"][:10] for r in seen(client, "3")}  # local days with red calls
    assert page.text.count('class="bar"') == len(red_days) >= 1
    russian = client.get("/report", params={"token": token_for("3")})
    assert "Красные звонки по дням" in russian.text
