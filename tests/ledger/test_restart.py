"""A graceful restart loses no decided call: a real ``callguard serve`` takes calls through
``POST /api/calls`` and is stopped (SIGINT) right after the last answer, while those calls still
gather for their batch in the ledger writer's thread; afterwards the ledger holds every one. On a
real SQLite file and on the real PostgreSQL server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from gateway.crm.dataset import load_dataset
from gateway.store.database import Database
from gateway.store.ledger import Ledger, LedgerRow
from gateway.web.demo import list_numbers
from tests.processes import callguard
from tests.timing import timeout

SECRET = "restart-test-secret-0123456789abcdef-0123"
API_KEY = "restart-test-api-key-0123456789"
CALLS = 40


def serve_calls(database_url: str) -> tuple[int, list[str]]:
    """Calls through a real gateway process, then SIGINT; its exit status and stderr."""
    env = {
        "CALLGUARD_SECRET": SECRET,
        "CALLGUARD_API_KEY": API_KEY,
        "CALLGUARD_DATABASE_URL": database_url,
    }
    phones = [n["phone"] for n in list_numbers(load_dataset())]
    with (
        callguard("serve", env=env) as gw,
        httpx.Client(base_url=gw.base, timeout=timeout(2)) as http,
    ):
        for i in range(CALLS):
            call = {"user_id": 7, "call_id": f"r{i}", "phone": phones[i % len(phones)]}
            answer = http.post(
                "/api/calls", json=call, headers={"Authorization": f"Bearer {API_KEY}"}
            )
            assert answer.status_code == 200, answer.text
    return gw.proc.wait(), gw.stderr


async def ledger_rows(database_url: str) -> list[LedgerRow]:
    db = Database(database_url)
    await db.open()
    try:
        wide = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
        return await Ledger(db).rows(*wide)
    finally:
        await db.close()


async def test_a_graceful_stop_writes_every_call(database_url: str) -> None:
    status, stderr = await asyncio.to_thread(serve_calls, database_url)
    assert status in (0, 130)  # 130: uvicorn hands the SIGINT on once it has shut down
    assert not [line for line in stderr if "ERROR" in line or "Traceback" in line]
    rows = await ledger_rows(database_url)
    assert sorted(r.call_id for r in rows) == sorted(f"r{i}" for i in range(CALLS))
    assert {r.caller_id for r in rows} == {"7"}
