"""What the ledger writer committed survives its process dying at once (SIGKILL, no close, no
checkpoint), on a real SQLite file with the writer connection's own settings
(``SQLITE_PRAGMAS``: synchronous NORMAL, checkpoints every 4000 pages): the rows are read back
from the write-ahead log by the next process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from datetime import UTC, datetime

from gateway.store.database import Database
from gateway.store.ledger import Ledger
from tests.timing import timeout

ROWS = 2000

# The child: the schema, then ROWS rows through the writer's sink in batches as the writer
# gathers them; it says so, and is killed before it closes anything.
CHILD = """
import asyncio, os, signal, sys
from datetime import UTC, datetime
from gateway.store.database import Database
from gateway.store.ledger_sink import SqliteSink

async def main(url, rows):
    db = Database(url)
    await db.open()  # the schema, as the gateway makes it
    sink = SqliteSink(db)
    at = sink.stamp(datetime.now(UTC))
    values = [
        (at, f"c{i}", str(i % 50), "in", "api", "red", "rule", "company", "10", "Title", "6",
         "Owner", "4567", None, None)
        for i in range(rows)
    ]
    for start in range(0, rows, 500):
        sink.write(values[start:start + 500])
    print("written", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_committed_rows_survive_the_writer_killed(sqlite_url: str) -> None:
    child = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CHILD, sqlite_url, str(ROWS)],
        capture_output=True,
        text=True,
        timeout=timeout(30),
    )
    assert child.stdout.strip() == "written", child.stderr
    assert child.returncode == -signal.SIGKILL
    db = Database(sqlite_url)
    await db.open()
    try:
        wide = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
        found = await Ledger(db).rows(*wide, limit=ROWS + 1)
    finally:
        await db.close()
    assert sorted(r.call_id for r in found) == sorted(f"c{i}" for i in range(ROWS))
