"""Real processes end to end: `callguard setup-portal` records the baseline in an SQLite file,
then `callguard serve` over the same file reverts a peer's status change right after each of
its starts (before the database, the first change after a restart became the baseline)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.tools.fakeportal import FakePortal
from tests.crm.test_serve_over_rest import free_port, wait_healthy
from tests.portal.conftest import ALL_EVENTS, WEBHOOK_TOKEN
from tests.portal.test_setup_portal import ROOT, setup_portal
from tests.timing import timeout


@contextlib.asynccontextmanager
async def serve(portal: FakePortal, database_url: str) -> AsyncIterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGUARD_")}
    env.update(
        CALLGUARD_SECRET="restart-test-secret-0123456789abcdef",
        CALLGUARD_PORTAL_URL=portal.webhook_url,
        CALLGUARD_WEBHOOK_TOKEN=WEBHOOK_TOKEN,
        CALLGUARD_DATABASE_URL=database_url,
        CALLGUARD_HOST="127.0.0.1",
        CALLGUARD_RATE_BURST="1000",
        CALLGUARD_RATE_PER_SECOND="1000",
        PORT=str(port),
    )
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "gateway", "serve"),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    address = f"127.0.0.1:{port}"
    try:
        await wait_healthy(address)
        yield f"http://{address}"
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(timeout(2)):
            _, err = await proc.communicate()
        assert b"Traceback" not in err, err.decode()


async def test_a_peer_change_right_after_a_restart_is_reverted(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'state' / 'callguard.sqlite3'}"
    async with FakePortal() as portal:
        code, out = await setup_portal(portal=portal, CALLGUARD_DATABASE_URL=database_url)
        assert code == 0, out
        for start in ("first start", "restart"):
            async with serve(portal, database_url) as base:
                portal.subscribe(base + "/bitrix/events", WEBHOOK_TOKEN, ALL_EVENTS)
                # A peer of the responsible manager (6) takes company 10 out of work.
                portal.set_company_status(10, "DECLINED", by_user=7)
                # The change, then the echo of the gateway's revert.
                delivered = await portal.deliveries.wait(2, timeout(2))
                assert [d.status for d in delivered] == [200, 200], start
                assert portal.company_status(10) == "IN_WORK", start
                portal.events.unsubscribe(base + "/bitrix/events")
                portal.deliveries.clear()
