"""The ledger's cost per row in an SQLite file that grows: the writer's connection as it ships
(gateway/store/ledger_sink.py ``SQLITE_PRAGMAS``) against the same sink on SQLite's defaults,
each writing to a fresh file of its own, block by block in turns (so that a machine that drifts
favours neither). Rows are written as the writer writes them: ``sink.write`` of a batch (750
rows: 3000 calls/s gathered for 0.25 s), each call a caller of ``--callers`` and a call id in no
order, as a portal's are. Printed per block: the writing thread's CPU and the wall clock per row
for both, and their ratios.

Each row lands on an index leaf page of its own once the table outgrows a batch, so the cost
climbs with the table's size, then levels off: run enough rows to see where.

    .venv/bin/python bench/ledger_rows.py [--rows 300000] [--block 75000] [--batch 750]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.store.database import Database
from gateway.store.ledger_sink import Row, SqliteSink


class DefaultsSink(SqliteSink):
    """The baseline: the same statements and chunking, SQLite's own settings."""

    pragmas = ()


def rows(sink: SqliteSink, n: int, callers: int, rng: random.Random) -> list[Row]:
    now = sink.stamp(datetime.now(UTC))
    return [
        (now, uuid.UUID(int=rng.getrandbits(128)).hex, f"u{rng.randrange(callers)}", "in", "api",
         "red", "in-work-other-owner", "company", "10", "ООО Ромашка", "6", "Анна Смирнова",
         "4567", None, None)
        for _ in range(n)
    ]  # fmt: skip


async def opened(url: str) -> Database:
    database = Database(url)
    await database.open()  # the schema, as the gateway makes it
    return database


def block(
    sink: SqliteSink, size: int, batch: int, callers: int, rng: random.Random
) -> tuple[float, float]:
    """Write ``size`` rows in batches; CPU and wall seconds spent writing (not building)."""
    cpu = wall = 0.0
    for _ in range(0, size, batch):
        values = rows(sink, batch, callers, rng)
        c0, w0 = time.thread_time(), time.perf_counter()
        sink.write(values)
        cpu += time.thread_time() - c0
        wall += time.perf_counter() - w0
    return cpu, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--block", type=int, default=75_000, help="rows per printed block")
    parser.add_argument("--batch", type=int, default=750, help="rows per transaction")
    parser.add_argument("--callers", type=int, default=5000)
    args = parser.parse_args()
    variants = {"defaults": DefaultsSink, "shipped": SqliteSink}
    with tempfile.TemporaryDirectory(prefix="ledger-rows-") as tmp:
        databases = {name: asyncio.run(opened(f"sqlite:///{tmp}/{name}.db")) for name in variants}
        sinks = {name: kind(databases[name]) for name, kind in variants.items()}
        rng = random.Random(1)
        print(f"== {args.rows} rows per file, {args.batch} per transaction, µs per row")
        print(f"{'rows':>9}  {'defaults cpu/wall':>18}  {'shipped cpu/wall':>17}  shipped/defaults")
        written = 0
        while written < args.rows:
            size = min(args.block, args.rows - written)
            found = {}
            order = list(variants) if (written // args.block) % 2 == 0 else list(variants)[::-1]
            for name in order:
                found[name] = block(sinks[name], size, args.batch, args.callers, rng)
            written += size
            d, s = (tuple(x / size * 1e6 for x in found[n]) for n in ("defaults", "shipped"))
            print(
                f"{written:>9}  {d[0]:>8.1f} / {d[1]:>7.1f}  {s[0]:>7.1f} / {s[1]:>7.1f}  "
                f"cpu {s[0] / d[0]:.2f}, wall {s[1] / d[1]:.2f}",
                flush=True,
            )
        for name, sink in sinks.items():
            sink.close()
            asyncio.run(databases[name].close())
    return 0


if __name__ == "__main__":
    sys.exit(main())
