"""Across processes (issue 11, item 5): call->paint when the tab is on another gateway process.

In one run, the same tabs and the same call rate through ``POST /api/calls``:

    single  one gateway process alone (no Redis): the single-process figure
    cross   two gateway processes A and B sharing Redis (``CALLGUARD_REDIS_URL``, the fanout of
            gateway/live/redisfanout.py), tabs spread over both (even tabs on A, odd on B), every
            call entering A for a tab on B: A decides and publishes, B reads and sends the paint
    local   the same two processes, calls entering A for a tab on A (A still publishes each
            paint and clear to Redis for B)

All three gateways run at once, each with its tabs connected, and the phases take turns, window
by window, ``--rounds`` times (single, cross, local, then local, cross, single, ...), so that
what else the machine does at a moment, or a drift over the run, falls on all of them alike;
each phase's figures pool its windows. The single-shot runs before (one phase after the other,
minutes apart) gave cross/single p99 from 1.2 to 3.2x over 16 runs of one machine.

Each gateway is a process of its own (gateway/tools/loadserver.py); the two share Redis under a
key prefix of this run's own, deleted afterwards, so other users of that Redis see nothing, and
one ledger database, as a deployment does (a tab's marks, written by B, wait for the row A
writes: gateway/ledger/held.py): an SQLite file of this run's own, or ``--database-url``. The
single process writes its ledger to a file of its own.
Printed: each window, then p50/p95/p99 of each phase, the worst loop stall of each process, the
CPU per call of the phase's gateway processes together (gateway/tools/loadserver.py
``CpuMeter``), and cross p99 / single p99 (goal <= 2). ``CALLGUARD_LEDGER_DAYS=0`` in the
environment runs the gateways without the ledger.

    .venv/bin/python bench/cross_process.py [--tabs 5000] [--rate 500] [--seconds 8] [--rounds 3]

The load generator, the gateways and Redis share this machine: on 2 cores, four busy processes
take turns, so the cross figure pays for the second process's CPU as well as for Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.tools.loadserver import CpuMeter, ServerProcess
from gateway.tools.loadtest import Client, Phase, Plan, _freeze_loop, demo_phones, run_phase

REDIS_URL = "redis://127.0.0.1:6379/0"
GOAL = 2.0  # cross-process p99 within this many times the single-process p99


@dataclass
class Setup:
    """Gateway processes with their tabs: one alone, or two sharing Redis."""

    servers: list[ServerProcess]
    client: Client | None = None
    meters: list[CpuMeter] = field(default_factory=list)

    async def open(self, plan: Plan) -> None:
        await asyncio.gather(*(s.start() for s in self.servers))
        for stats in [await s.command("stats") for s in self.servers]:
            if "fanout" in stats and not stats["fanout"]["ok"]:
                raise RuntimeError(f"a gateway is not connected to Redis: {stats}")
        bases = [s.base for s in self.servers]
        self.client = Client(plan, bases[0], bases)  # tab i on server i % n, calls into the first
        await self.client.connect_all()

    async def settle(self) -> None:
        for server in self.servers:
            await server.command("reset")
        self.meters = [CpuMeter(s) for s in self.servers]
        await asyncio.gather(*(m.idle(2.0) for m in self.meters))

    async def window(self, phones: list[str], rng: random.Random, tabs: Sequence[int]) -> Phase:
        """Calls at the plan's rate for the plan's seconds, each to a tab drawn from ``tabs``."""
        assert self.client is not None
        self.client.latencies, self.client.pending = [], {}
        await asyncio.gather(*(m.start() for m in self.meters))
        sent = await run_phase(self.client, "api", phones, rng, tabs)
        each = [await s.command("reset") for s in self.servers]
        stats = {
            "stall_ms": [s["stall_ms"] for s in each],
            "own_stall_ms": [s["own_stall_ms"] for s in each],
            "cpu_us": sum(m.per_call(s, sent) for m, s in zip(self.meters, each, strict=True)),
        }
        return Phase("api", sent, self.client.latencies, stats)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        await asyncio.gather(*(s.stop() for s in self.servers))


def pooled(windows: list[Phase]) -> Phase:
    """A phase: its windows' calls together, each process's worst stall, CPU per call overall."""
    sent = sum(w.sent for w in windows)
    stats = {
        key: [max(ms) for ms in zip(*(w.server[key] for w in windows), strict=True)]
        for key in ("stall_ms", "own_stall_ms")
    }
    stats["cpu_us"] = sum(w.server["cpu_us"] * w.sent for w in windows) / max(1, sent)
    return Phase("api", sent, [ms for w in windows for ms in w.latencies_ms], stats)


async def drop_keys(redis_url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

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
    from gateway.run.server import raise_fd_limit

    raise_fd_limit()
    plan = Plan(tabs=args.tabs, rate=args.rate, seconds=args.seconds, paths=("api",))
    phones = demo_phones()
    started = time.perf_counter()
    prefix = f"callguard-bench-{uuid.uuid4().hex[:8]}:"
    freezer: asyncio.Task[None] | None = None
    with tempfile.TemporaryDirectory(prefix="callguard-cross-") as scratch:
        gateway = functools.partial(ServerProcess, plan.tune_gc, False, plan.heartbeat)
        alone = Setup([gateway(database_url=f"sqlite:///{scratch}/single.db")])
        shared_url = args.database_url or f"sqlite:///{scratch}/shared.db"
        pair = Setup(
            [gateway(database_url=shared_url, redis=(args.redis_url, prefix)) for _ in range(2)]
        )
        phases = [
            ("single", alone, range(plan.tabs)),
            ("cross", pair, range(1, plan.tabs, 2)),
            ("local", pair, range(0, plan.tabs, 2)),
        ]
        windows: dict[str, list[Phase]] = {name: [] for name, _, _ in phases}
        try:
            print(f"== one process: {plan.tabs} tabs", flush=True)
            await alone.open(plan)
            print(f"== two processes sharing Redis: {plan.tabs} tabs, half on each", flush=True)
            await pair.open(plan)
            await asyncio.sleep(plan.settle)
            await asyncio.gather(alone.settle(), pair.settle())
            gc.collect()
            gc.freeze()  # as loadtest.run: this process's own GC must not stall the clock
            freezer = asyncio.ensure_future(_freeze_loop())
            rng = random.Random(plan.seed)
            print(
                f"== {args.rounds} rounds of {plan.seconds:g} s windows at {plan.rate:g} calls/s",
                flush=True,
            )
            for turn in range(args.rounds):
                for name, setup, tabs in phases if turn % 2 == 0 else phases[::-1]:
                    windows[name].append(await setup.window(phones, rng, tabs))
                    print(f"  round {turn + 1} {line(name, windows[name][-1])}", flush=True)
                    await asyncio.sleep(1.0)  # the last paints' ends, before the next window
        finally:
            if freezer is not None:
                freezer.cancel()
            await asyncio.gather(alone.close(), pair.close())
            gc.unfreeze()
            await drop_keys(args.redis_url, prefix)
    single, cross, local = (pooled(windows[name]) for name, _, _ in phases)
    ratio = cross.percentile(0.99) / single.percentile(0.99)
    each = [
        w.percentile(0.99) / s.percentile(0.99)
        for w, s in zip(windows["cross"], windows["single"], strict=True)
    ]
    return [
        f"== results ({time.perf_counter() - started:.0f} s, python {sys.version.split()[0]})",
        line("single", single),
        line("cross", cross),
        line("local", local),
        f"cross/single p99: {ratio:.2f} (goal <= {GOAL:g}); p95: "
        f"{cross.percentile(0.95) / single.percentile(0.95):.2f}; "
        f"p50: {cross.percentile(0.5) / single.percentile(0.5):.2f}; "
        f"round by round p99: {', '.join(f'{r:.2f}' for r in each)}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, default=5000, help="per setup; half on each of two")
    parser.add_argument("--rate", type=float, default=500.0, help="calls per second (500)")
    parser.add_argument("--seconds", type=float, default=8.0, help="per window (8)")
    parser.add_argument("--rounds", type=int, default=3, help="windows per phase (3)")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"shared Redis ({REDIS_URL})")
    parser.add_argument(
        "--database-url", default="", help="the two processes' ledger (an SQLite file of the run)"
    )
    print("\n".join(asyncio.run(bench(parser.parse_args()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
