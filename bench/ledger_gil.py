"""The ledger writer's manners with the GIL: how late the event loop sees a datagram while
another thread writes ledger batches to SQLite, written as the sink writes them (in chunks of
``CHUNK`` statements, pausing once the thread has worked ``HOLD``: gateway/store/ledger_sink.py),
in chunks with a pause after every one (the sink's way before), or with one ``executemany`` per
kind of statement, against no writer at all. Also printed: the writer thread's context switches
per batch, each a cost of its own on a virtual machine.

A thread that lets go of the GIL only for one SQLite step takes it back before the loop's
thread has woken; the loop then waits for the rest of the batch. To make that visible above a
busy machine's noise, the writer here writes 50 times the usual rate (a batch of 150 rows and
150 marks every 10 ms instead of every 250 ms at 300 calls/s). Variants alternate over rounds.

    .venv/bin/python bench/ledger_gil.py [--rounds 2] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ledger_cost import PINGER, Pings, pct
from gateway.store.database import Database
from gateway.store.ledger_sink import CHUNK, PAUSE, SqliteSink

VARIANTS = ("no writer", "one executemany", "every chunk", "paced")


def batch(sink: SqliteSink, n: int, round_: int) -> tuple[list[tuple[object, ...]], list[object]]:
    now = sink.stamp(datetime.now(UTC))
    rows = [
        (now, f"c{round_}-{i}", "7", "in", "ws", "red", "rule", "company", "10", "ООО Ромашка",
         "6", "Анна Смирнова", "4567", None, None)
        for i in range(n)
    ]  # fmt: skip
    return rows, [(now, "7", f"c{round_}-{i}") for i in range(n)]


def switches() -> int:
    """This thread's voluntary context switches so far (Linux)."""
    with open(f"/proc/self/task/{threading.get_native_id()}/status") as status:
        line = next(x for x in status if x.startswith("voluntary_ctxt_switches"))
    return int(line.split()[1])


def write(sink: SqliteSink, variant: str, stop: threading.Event, out: list[float]) -> None:
    assert sink.database.sqlite_target is not None
    name, uri = sink.database.sqlite_target
    conn = sqlite3.connect(name, uri=uri, isolation_level=None, timeout=5.0)
    k = 0
    before = switches()
    while not stop.is_set():
        rows, ended = batch(sink, 150, k)
        k += 1
        if variant == "paced":
            sink.write(rows, ended)  # type: ignore[arg-type]
        else:
            conn.execute("BEGIN IMMEDIATE")
            for values, statement in (
                (rows, sink.statements.upsert),
                (ended, sink.statements.ended),
            ):
                step = CHUNK if variant == "every chunk" else len(values)
                for start in range(0, len(values), step):
                    if start:
                        time.sleep(PAUSE)
                    conn.executemany(statement, values[start : start + step])
            conn.execute("COMMIT")
        time.sleep(0.01)
    # Less the batches' own sleeps: what the pauses cost.
    out.append((switches() - before - k) / max(1, k))
    sink.close()
    conn.close()


async def delays(variant: str, url: str, seconds: float) -> tuple[list[float], float]:
    database = Database(url)
    await database.open()
    loop = asyncio.get_running_loop()
    transport, pings = await loop.create_datagram_endpoint(Pings, local_addr=("127.0.0.1", 0))
    stop = threading.Event()
    writer = None
    per_batch: list[float] = []
    if variant != "no writer":
        writer = threading.Thread(
            target=write, args=(SqliteSink(database), variant, stop, per_batch)
        )
        writer.start()
    port = transport.get_extra_info("sockname")[1]
    pinger = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PINGER, str(port), str(int(seconds * 1000)), "0.001"
    )
    await pinger.wait()
    await asyncio.sleep(0.05)
    stop.set()
    if writer is not None:
        writer.join()
    transport.close()
    await database.close()
    return pings.delays, (per_batch[0] if per_batch else 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ledger-gil-") as tmp:
        for kind, url in (("in memory", "sqlite:///:memory:"), ("file", f"sqlite:///{tmp}/db")):
            found: dict[str, list[float]] = {v: [] for v in VARIANTS}
            print(f"== {kind}: the loop's wake-up delay, ms (1000 datagrams/s)")
            for r in range(args.rounds):
                for variant in VARIANTS if r % 2 == 0 else reversed(VARIANTS):
                    d, pauses = asyncio.run(delays(variant, url, args.seconds))
                    found[variant].append(pct(d, 0.99))
                    print(
                        f"  round {r + 1} {variant:>15}: p50 {pct(d, 0.5):.3f} "
                        f"p99 {pct(d, 0.99):.3f} p99.9 {pct(d, 0.999):.2f} max {max(d):.2f}; "
                        f"writer's context switches per batch of 300: {pauses:.1f}",
                        flush=True,
                    )
            for variant, p99s in found.items():
                print(f"  median p99 {variant:>15}: {statistics.median(p99s):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
