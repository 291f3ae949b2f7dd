"""``callguard report`` at the console, over a real SQLite ledger."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from gateway.cli import main
from gateway.ledger.report import CSV_COLUMNS
from gateway.store.database import Database
from gateway.store.ledger import Ledger, LedgerRow
from tests.timing import timeout


def call(call_id: str, caller: str, day: int, colour: str = "red") -> LedgerRow:
    return LedgerRow(
        datetime(2026, 3, day, 9, tzinfo=UTC), call_id, caller, "out", "ws", colour,
        "other_manager_active", "company", "10", "ООО «Ромашка»", "6", "Анна Смирнова", "4567",
    )  # fmt: skip


@pytest.fixture
def ledger_url(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    async def fill() -> None:
        db = Database(sqlite_url)
        await db.open()
        try:
            rows = [
                call("a", "7", 2),
                call("b", "7", 3),
                call("c", "8", 3),
                call("d", "8", 3, "green"),
            ]
            await Ledger(db).write(rows)
        finally:
            await db.close()

    asyncio.run(fill())
    monkeypatch.setenv("CALLGUARD_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("CALLGUARD_SECRET", raising=False)
    return sqlite_url


def test_csv_of_a_period_at_the_console(ledger_url: str) -> None:
    env = {**os.environ, "CALLGUARD_DATABASE_URL": ledger_url}
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "report", "--from", "2026-03-03", "--to", "2026-03-03", "--csv"],
        env=env, capture_output=True, text=True, timeout=timeout(4), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert done.stdout.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert [(r["call_id"], r["caller_name"]) for r in rows] == [
        ("b", "Пётр Кузнецов"),
        ("c", "Дмитрий Волков"),
    ]


def test_text_report_has_totals_and_days(
    ledger_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--from", "2026-03-01", "--to", "2026-03-04"]) == 0
    out = capsys.readouterr().out
    assert "Всего звонков: 3" in out
    assert "     2  Пётр Кузнецов" in out
    assert "     3  Анна Смирнова" in out  # whose clients
    assert "2026-03-03     2  " in out
    assert "2026-03-01     0" in out
    assert "…4567" in out


def test_all_colours_and_bad_dates(ledger_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--from", "2026-03-03", "--to", "2026-03-03", "--colour", "all"]) == 0
    assert "Всего звонков: 3" in capsys.readouterr().out
    assert main(["report", "--from", "March"]) == 2
    assert "'from' must be a date YYYY-MM-DD" in capsys.readouterr().err
