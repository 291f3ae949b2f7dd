"""A database that fails while the gateway runs: the status guard says so in one warning and
leaves the status as it is; calls are painted as before (the live path never waits on it)."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from gateway.store.url import sqlite_file
from gateway.tools.fakeportal import FakePortal
from tests.portal.conftest import open_tab, rest_gateway, settle
from tests.timing import timeout

RED_PHONE = "+7 (495) 123-45-67"  # ООО «Ромашка» (company 10): IN_WORK with user 6


@contextlib.asynccontextmanager
async def outage(url: str) -> AsyncIterator[None]:
    """Break the gateway's database from outside, as a lost disk or a stopped server would,
    and mend it afterwards."""
    file = sqlite_file(url)
    if file is not None:
        with contextlib.closing(sqlite3.connect(file)) as conn:
            conn.execute("ALTER TABLE approved_status RENAME TO approved_status_away")
            conn.commit()
            try:
                yield
            finally:
                conn.execute("ALTER TABLE approved_status_away RENAME TO approved_status")
                conn.commit()
        return
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_a_failing_database_leaves_the_status_and_never_blocks_a_call(
    fake: FakePortal, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with rest_gateway(fake, database_url=database_url) as gw, open_tab(gw.url, "7") as tab:
        fake.update("company", 10, {"COMMENTS": "recorded while the database works"}, by_user=6)
        await settle(fake, gw, 1)
        async with httpx.AsyncClient(timeout=timeout()) as client:
            before = (await client.get(gw.url + "/healthz")).json()["database"]
        assert (before["ok"], before["reason"]) == (True, None)
        caplog.clear()
        async with outage(database_url):
            fake.set_company_status(10, "DECLINED", by_user=7)  # a peer: reverted, normally
            await settle(fake, gw, 2)  # deliveries so far: the first update and this change
            assert fake.company_status(10) == "DECLINED"  # left as is: nothing to judge against
            assert fake.notifications == []
            # Calls go on: the company's numbers were refreshed and the call is painted.
            await tab.socket.send(json.dumps({"type": "call", "call_id": "c1", "phone": RED_PHONE}))
            paint = await tab.next("paint")
            assert (paint["call_id"], paint["colour"]) == ("c1", "none")
            # Health says so, and still answers 200: this process serves its tabs.
            async with httpx.AsyncClient(timeout=timeout()) as client:
                health = await client.get(gw.url + "/healthz")
                exposition = (await client.get(gw.url + "/metrics")).text
            assert health.status_code == 200
            database = health.json()["database"]
            assert database["ok"] is False
            # The last failure: the guard's read, or the ledger writing the call in the background.
            assert database["reason"].startswith(
                ("database approved_get failed: ", "database ledger_write failed: ")
            )
            assert 'callguard_database_errors_total{operation="approved_get"} 1.0' in exposition
        # The database is back: the next peer's change is judged against the approved IN_WORK.
        fake.deliveries.clear()
        fake.set_company_status(10, "PENDING", by_user=7)
        await settle(fake, gw, 2)
        assert fake.company_status(10) == "IN_WORK"
        async with httpx.AsyncClient(timeout=timeout()) as client:
            after = (await client.get(gw.url + "/healthz")).json()["database"]
        assert after["ok"] is True
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    # The call painted during the outage reaches the ledger in the background: if its write
    # met the outage (PostgreSQL refusing connections), one line says so, and no more.
    ledger = [r.getMessage() for r in warnings if r.name == "callguard.ledger"]
    assert len(ledger) <= 1
    assert all(m.startswith("ledger: database ledger_write failed: ") for m in ledger)
    [line] = [r for r in warnings if r.name != "callguard.ledger"]
    assert line.name == "callguard.webhooks"
    assert line.getMessage().startswith(
        "company 10: status not checked: database approved_get failed: "
    )
    assert line.exc_info is None
    assert "\n" not in line.getMessage()
