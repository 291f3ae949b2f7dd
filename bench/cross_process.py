"""Across processes (issue 11, item 5): call->paint when the tab is on another gateway process.

In one run, the same tabs and the same call rate through ``POST /api/calls``:

    single  one gateway process alone (no Redis): the single-process figure
    cross   two gateway processes A and B sharing Redis (``CALLGUARD_REDIS_URL``, the fanout of
            gateway/live/redisfanout.py), tabs spread over both (even tabs on A, odd on B), every
            call entering A for a tab on B: A decides and publishes, B reads and sends the paint
    local   the same two processes, calls entering A for a tab on A (A still publishes each
            paint and clear to Redis for B)

Each gateway is a process of its own (gateway/tools/loadserver.py); the two share Redis under a
key prefix of this run's own, deleted afterwards, so other users of that Redis see nothing, and
one ledger database, as a deployment does (a tab's marks, written by B, wait for the row A
writes: gateway/ledger/held.py): an SQLite file of this run's own, or ``--database-url``. The
single process writes its ledger to a file of its own.
Printed: p50/p99 of each, the worst loop stall of each process, the CPU per call of all the
gateway processes together (gateway/tools/loadserver.py ``CpuMeter``), and cross p99 / single
p99 (goal <= 2). ``CALLGUARD_LEDGER_DAYS=0`` in the environment runs the gateways without the ledger.

    .venv/bin/python bench/cross_process.py [--tabs 5000] [--rate 500] [--seconds 8]

The load generator, both gateways and Redis share this machine: on 2 cores, four busy processes
take turns, so the cross figure pays for the second process's CPU as well as for Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.tools.loadserver import CpuMeter, ServerProcess
from gateway.tools.loadtest import Client, Phase, Plan, _freeze_loop, demo_phones, run_phase

REDIS_URL = "redis://127.0.0.1:6379/0"
GOAL = 2.0  # cross-process p99 within this many times the single-process p99


async def measure(
    plan: Plan,
    phones: list[str],
    servers: list[ServerProcess],
    phases: list[tuple[str, Sequence[int]]],
) -> list[Phase]:
    """Tab i on ``servers[i % len(servers)]``, calls into the first; one phase per (name, tabs
    called). Each phase's server figures: the worst loop stall of any process and the CPU per
    call of all of them together (``CpuMeter``)."""
    from gateway.run.server import raise_fd_limit

    raise_fd_limit()
    results: list[Phase] = []
    freezer: asyncio.Task[None] | None = None
    await asyncio.gather(*(s.start() for s in servers))
    client = Client(plan, servers[0].base, [s.base for s in servers])
    try:
        for stats in [await s.command("stats") for s in servers]:
            if "fanout" in stats and not stats["fanout"]["ok"]:
                raise RuntimeError(f"a gateway is not connected to Redis: {stats}")
        await client.connect_all()
        await asyncio.sleep(plan.settle)
        for server in servers:
            await server.command("reset")
        gc.collect()
        gc.freeze()  # as loadtest.run: this process's own GC must not stall the clock
        freezer = asyncio.ensure_future(_freeze_loop())
        meters = [CpuMeter(s) for s in servers]
        await asyncio.gather(*(m.idle(2.0) for m in meters))
        rng = random.Random(plan.seed)
        for name, tabs in phases:
            client.latencies, client.pending = [], {}
            await asyncio.gather(*(m.start() for m in meters))
            sent = await run_phase(client, "api", phones, rng, tabs)
            each = [await s.command("reset") for s in servers]
            stats = {
                "stall_ms": [s["stall_ms"] for s in each],
                "own_stall_ms": [s["own_stall_ms"] for s in each],
                "cpu_us": sum(m.per_call(s, sent) for m, s in zip(meters, each, strict=True)),
            }
            results.append(Phase(name, sent, client.latencies, stats))
            await asyncio.sleep(1.0)
    finally:
        if freezer is not None:
            freezer.cancel()
        await client.close()
        await asyncio.gather(*(s.stop() for s in servers))
        gc.unfreeze()
    return results


async def shared(plan: Plan, phones: list[str], redis_url: str) -> list[Phase]:
    """Two processes sharing Redis under a prefix of their own: the cross and the local phase."""
    import redis.asyncio as aioredis

    prefix = f"callguard-bench-{uuid.uuid4().hex[:8]}:"
    servers = [
        ServerProcess(
            plan.tune_gc,
            False,
            plan.heartbeat,
            database_url=plan.database_url,
            redis=(redis_url, prefix),
        )
        for _ in range(2)
    ]
    phases = [("cross", range(1, plan.tabs, 2)), ("local", range(0, plan.tabs, 2))]
    try:
        return await measure(plan, phones, servers, phases)
    finally:
        redis = aioredis.from_url(redis_url)
        try:
            keys = [k async for k in redis.scan_iter(match=prefix + "*")]
            if keys:
                await redis.delete(*keys)
        finally:
            await redis.aclose()


def line(name: str, ph: Phase) -> str:
    lost = f" LOST {ph.lost}" if ph.lost else ""
    stalls = ", ".join(
        f"{ms:.1f} (own {own:.1f})"
        for ms, own in zip(ph.server["stall_ms"], ph.server["own_stall_ms"], strict=True)
    )
    return (
        f"{name:>6}: {ph.sent} calls, call->paint p50 {ph.percentile(0.5):6.2f} ms "
        f"p95 {ph.percentile(0.95):6.2f} p99 {ph.percentile(0.99):7.2f} ms "
        f"max {max(ph.latencies_ms, default=0.0):6.1f}{lost}; worst loop stall {stalls} ms; "
        f"server CPU {ph.server['cpu_us']:.0f} us/call"
    )


async def bench(args: argparse.Namespace) -> list[str]:
    plan = Plan(tabs=args.tabs, rate=args.rate, seconds=args.seconds, paths=("api",))
    phones = demo_phones()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="callguard-cross-") as scratch:
        print(f"== one process: {plan.tabs} tabs, {plan.rate:g} calls/s", flush=True)
        url = f"sqlite:///{scratch}/single.db"
        one = ServerProcess(plan.tune_gc, False, plan.heartbeat, database_url=url)
        (alone,) = await measure(plan, phones, [one], [("single", range(plan.tabs))])
        print(line("single", alone), flush=True)
        print(f"== two processes sharing Redis: {plan.tabs} tabs, half on each", flush=True)
        url = args.database_url or f"sqlite:///{scratch}/shared.db"
        plan = replace(plan, seed=plan.seed + 1, database_url=url)
        cross, local = await shared(plan, phones, args.redis_url)
    print(line("cross", cross), flush=True)
    print(line("local", local), flush=True)
    ratio = cross.percentile(0.99) / alone.percentile(0.99)
    return [
        f"== results ({time.perf_counter() - started:.0f} s, python {sys.version.split()[0]})",
        line("single", alone),
        line("cross", cross),
        line("local", local),
        f"cross/single p99: {ratio:.2f} (goal <= {GOAL:g}); "
        f"p50: {cross.percentile(0.5) / alone.percentile(0.5):.2f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, default=5000, help="in all, half on each (5000)")
    parser.add_argument("--rate", type=float, default=500.0, help="calls per second (500)")
    parser.add_argument("--seconds", type=float, default=8.0, help="per phase (8)")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"shared Redis ({REDIS_URL})")
    parser.add_argument(
        "--database-url", default="", help="the two processes' ledger (an SQLite file of the run)"
    )
    print("\n".join(asyncio.run(bench(parser.parse_args()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
