"""The ledger's price on the paint path (issue 12): the same gateway with the ledger of decided
calls on and off, alternated in one run, so that neither the order nor a machine that drifts
(other work starting or stopping) favours one of them.

Three parts (``--parts``), each alternating the variants on, off | off, on | ... over
``--rounds`` and printing every round and the medians:

1. ``cpu``: microseconds per call, in this process, no network: whole calls through the ``/ws``
   pipeline until the paint reached the tab and the call ended, back to back, then the ledger
   flushed. Three figures: the event loop's thread alone (``time.thread_time``: its own work),
   the wall clock (the loop's work plus whatever it waited for, the GIL held by the ledger
   writer's thread included) and the whole process (``time.process_time``: the writer's thread
   included).
2. ``wake``: the loop's wake-up delay. Calls go through the pipeline at ``--rate`` (ending 50 ms
   later, so the writer writes rows and marks) while another process sends 1000 datagrams a
   second stamped with their sending time; how late the loop sees each is how late it would see
   a tab's frame. A writer thread hogging the GIL shows here first (p99, p99.9, max).
3. ``load``: call->paint under load. Each variant a gateway process of its own
   (gateway/tools/loadserver.py), ``--tabs`` tabs, calls at ``--rate`` through
   ``POST /api/calls`` and through the websocket: p50 and p99 per path, the loop's worst stall,
   the on/off ratio per round and its median.

The database is a fresh SQLite file per variant (the production default), or ``--database-url``
(PostgreSQL: each variant adds rows to it; ``sqlite:///:memory:``: each its own).

    .venv/bin/python bench/ledger_cost.py [--rounds 3] [--tabs 2000] [--rate 300] [--seconds 6]

On 2 cores the load generator takes one: a machine busy with other work shows in the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

from bench.call_cost import USER, bench_settings, open_tab, settle
from gateway.live.tabs import Tab
from gateway.run.gcpolicy import GcPolicy
from gateway.run.runtime import Gateway
from gateway.tools.loadtest import Plan, Run, demo_phones, run
from gateway.web.app import create_app
from gateway.web.demo import list_numbers

VARIANTS = {"on": "365", "off": "0"}  # CALLGUARD_LEDGER_DAYS of each


def database(url: str, scratch: Path, name: str) -> str:
    return url or f"sqlite:///{scratch / name / 'callguard.sqlite3'}"


# -- 1. CPU per call ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def in_process(ledger_days: int, url: str) -> AsyncIterator[tuple[Gateway, Tab, list[str]]]:
    """A gateway in this process (no server), one tab that swallows frames, the cache warm."""
    app = create_app(bench_settings(ledger_days, database_url=url))
    gateway = app.state.gateway
    async with app.router.lifespan_context(app):
        phones = [n["phone"] for n in list_numbers(gateway.dataset)]
        tab = open_tab(gateway)
        for phone in phones:
            await gateway.directory.lookup(gateway.calls.normalize(phone))
        yield gateway, tab, phones
        gateway.tabs.remove(tab)


async def cpu_per_call(calls: int, ledger_days: int, url: str) -> tuple[float, float, float]:
    """(loop thread CPU, wall clock, whole process CPU) microseconds per call."""
    async with in_process(ledger_days, url) as (gateway, tab, phones):

        async def one(call_id: str, phone: str) -> None:
            await gateway.calls.submit(USER, call_id, phone, source="ws")
            await gateway.calls.idle()
            await settle(tab)
            await gateway.calls.end_call(USER, call_id)
            await settle(tab)

        async def flush() -> None:
            if gateway.recorder is not None:
                await gateway.recorder.flush()

        for i in range(min(calls, 500)):  # warm up: caches, the writer's connection
            await one(f"warm{i}", phones[i % len(phones)])
        await flush()
        gc.collect()
        loop_cpu, wall, process_cpu = time.thread_time(), time.perf_counter(), time.process_time()
        for i in range(calls):
            await one(f"c{i}", phones[i % len(phones)])
        wall = time.perf_counter() - wall  # before the flush: it waits for the writer
        await flush()  # the rows these calls left: part of their price
        loop_cpu = time.thread_time() - loop_cpu
        process_cpu = time.process_time() - process_cpu
    return loop_cpu / calls * 1e6, wall / calls * 1e6, process_cpu / calls * 1e6


async def cpu_part(calls: int, rounds: int, url: str, scratch: Path) -> list[str]:
    found: dict[str, list[tuple[float, float, float]]] = {name: [] for name in VARIANTS}
    for r in range(rounds):
        order = ["on", "off"] if r % 2 == 0 else ["off", "on"]
        for name in order:
            db = database(url, scratch, f"cpu-{name}-{r}")
            found[name].append(await cpu_per_call(calls, int(VARIANTS[name]), db))
    out = [f"== microseconds per call ({calls} calls through /ws, {rounds} rounds each)"]
    kinds = ("loop thread CPU", "wall", "process CPU")
    for name, figures in found.items():
        shown = " | ".join(
            f"{kind} {', '.join(f'{f[k]:.0f}' for f in figures)}" for k, kind in enumerate(kinds)
        )
        out.append(f"  ledger {name:>3}: {shown}")
    on = [statistics.median(x) for x in zip(*found["on"], strict=True)]
    off = [statistics.median(x) for x in zip(*found["off"], strict=True)]
    out.append(
        "  median on / off: "
        + "; ".join(
            f"{kind} {a:.0f} / {b:.0f} ({a - b:+.0f})"
            for kind, a, b in zip(kinds, on, off, strict=True)
        )
    )
    return out


# -- 2. the loop's wake-up delay -------------------------------------------------------------

PINGER = """
import socket, struct, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
port, count, every = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
start = time.perf_counter()
for i in range(count):
    while time.perf_counter() < start + i * every:
        time.sleep(every / 4)
    sock.sendto(struct.pack("d", time.perf_counter()), ("127.0.0.1", port))
"""


class Pings(asyncio.DatagramProtocol):
    """Each datagram carries when it was sent (CLOCK_MONOTONIC, shared by the processes):
    how long the loop took to see it is how long a tab's frame would wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.delays.append((time.perf_counter() - struct.unpack("d", data)[0]) * 1e3)


async def wake_delays(rate: float, seconds: float, ledger_days: int, url: str) -> list[float]:
    """Milliseconds between a datagram's sending (1000/s, another process) and the loop seeing
    it, while calls go through the pipeline at ``rate`` and end 50 ms later."""
    loop = asyncio.get_running_loop()
    async with in_process(ledger_days, url) as (gateway, _tab, phones):
        # The server's GC policy, as `callguard serve` runs it: without it CPython's own full
        # collections stalled this loop 55-77 ms in the variant that allocates more (the
        # ledger's rows), and were read as the writer's thread holding the GIL.
        policy = GcPolicy()
        policy.after_startup()
        collector = asyncio.ensure_future(policy.run())
        transport, pings = await loop.create_datagram_endpoint(Pings, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        pinger = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PINGER, str(port), str(int(seconds * 1000)), "0.001"
        )
        started = time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            await gateway.calls.submit(USER, f"w{i}", phones[i % len(phones)], source="ws")
            loop.call_later(
                0.05, lambda i=i: loop.create_task(gateway.calls.end_call(USER, f"w{i}"))
            )
        await pinger.wait()
        await asyncio.sleep(0.1)
        transport.close()
        await gateway.calls.idle()
        collector.cancel()
        gc.unfreeze()
    return pings.delays


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def wake_part(rate: float, seconds: float, rounds: int, url: str, scratch: Path) -> list[str]:
    found: dict[str, list[list[float]]] = {name: [] for name in VARIANTS}
    for r in range(rounds):
        for name in ["on", "off"] if r % 2 == 0 else ["off", "on"]:
            db = database(url, scratch, f"wake-{name}-{r}")
            found[name].append(await wake_delays(rate, seconds, int(VARIANTS[name]), db))
    out = [
        f"== the loop's wake-up delay, ms: 1000 datagrams/s from another process while "
        f"{rate:g} calls/s go through the pipeline ({seconds:g} s, {rounds} rounds each)"
    ]
    for name, runs in found.items():
        shown = "; ".join(
            f"p50 {pct(d, 0.5):.3f} p99 {pct(d, 0.99):.3f} p99.9 {pct(d, 0.999):.2f} "
            f"max {max(d):.2f}"
            for d in runs
        )
        out.append(f"  ledger {name:>3}: {shown}")
    for q in (0.5, 0.99, 0.999):
        ratios = [pct(a, q) / pct(b, q) for a, b in zip(found["on"], found["off"], strict=True)]
        out.append(f"  on/off p{q * 100:g}: median {statistics.median(ratios):.2f}x")
    return out


# -- 3. latency under load ---------------------------------------------------------------------


async def variant(plan: Plan, name: str) -> Run:
    os.environ["CALLGUARD_LEDGER_DAYS"] = VARIANTS[name]  # the load server's child reads it
    try:
        return await run(plan, demo_phones())
    finally:
        os.environ.pop("CALLGUARD_LEDGER_DAYS", None)


def line(name: str, result: Run) -> str:
    paths = "  ".join(
        f"{ph.path} p50 {ph.percentile(0.5):5.2f} p99 {ph.percentile(0.99):6.2f}"
        f"{f' LOST {ph.lost}' if ph.lost else ''}"
        for ph in result.phases
    )
    return f"    {name:>3}: {paths} ms; worst stall {result.worst_stall_ms:5.1f} ms"


async def latency_part(plan: Plan, rounds: int, url: str, scratch: Path) -> list[str]:
    """Prints each round as it ends (a round takes a minute); returns the summary."""
    print(f"== call->paint, {plan.tabs} tabs, {plan.rate:g} calls/s, {plan.seconds:g} s per path")
    runs: dict[str, list[Run]] = {name: [] for name in VARIANTS}
    ratios: dict[tuple[str, float], list[float]] = {}
    for r in range(rounds):
        order = ["on", "off"] if r % 2 == 0 else ["off", "on"]
        out = [f"  round {r + 1} ({', '.join(order)}):"]
        for name in order:
            db = database(url, scratch, f"load-{name}-{r}")
            result = await variant(replace(plan, database_url=db), name)
            runs[name].append(result)
            out.append(line(name, result))
        on, off = runs["on"][-1], runs["off"][-1]
        shown = []
        for a, b in zip(on.phases, off.phases, strict=True):
            for q in (0.5, 0.99):
                ratio = a.percentile(q) / b.percentile(q)
                ratios.setdefault((a.path, q), []).append(ratio)
                shown.append(f"{a.path} p{q * 100:g} {ratio:.2f}x")
        out.append(f"    on/off: {', '.join(shown)}")
        print("\n".join(out), flush=True)
    summary = [f"  median on/off over {rounds} rounds:"]
    for (path, q), values in ratios.items():
        summary.append(f"    {path:>3} p{q * 100:g}: {statistics.median(values):.2f}x")
    for name, results in runs.items():
        stalls = [r.worst_stall_ms for r in results]
        summary.append(
            f"  worst loop stall, ledger {name}: {max(stalls):.1f} ms "
            f"(median of rounds {statistics.median(stalls):.1f} ms)"
        )
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of on and off (3)")
    parser.add_argument("--tabs", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--cpu-calls", type=int, default=5000, help="per CPU figure (5000)")
    parser.add_argument("--database-url", default="", help="instead of a fresh SQLite file")
    parser.add_argument("--parts", default="cpu,wake,load", help="which parts (cpu,wake,load)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    plan = Plan(tabs=args.tabs, rate=args.rate, seconds=args.seconds)
    url, rounds = args.database_url, args.rounds
    with tempfile.TemporaryDirectory(prefix="ledger-cost-") as tmp:
        scratch = Path(tmp)
        if "cpu" in parts:
            print("\n".join(asyncio.run(cpu_part(args.cpu_calls, rounds, url, scratch))))
        if "wake" in parts:
            wake = wake_part(args.rate, args.seconds, rounds, url, scratch)
            print("\n".join(uvloop.run(wake)), flush=True)  # the loop serve runs on
        if "load" in parts:
            print("\n".join(asyncio.run(latency_part(plan, rounds, url, scratch))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
