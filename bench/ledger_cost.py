"""The ledger's price on the paint path (issue 12): the same gateway with the ledger of decided
calls on and off, in one run, at the same load.

Each variant is a gateway process of its own (gateway/tools/loadserver.py) with N tabs and calls
at a fixed rate through ``POST /api/calls`` and through the websocket; printed: call->paint p50,
p99 and the worst loop stall per path, and on/off ratios. The ledger's database is the
in-process SQLite the load server uses; a file or PostgreSQL moves the writes further off.

    .venv/bin/python bench/ledger_cost.py [--tabs 2000] [--rate 300] [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.tools.loadtest import Plan, Run, demo_phones, run


async def variant(plan: Plan, ledger_days: str) -> Run:
    os.environ["CALLGUARD_LEDGER_DAYS"] = ledger_days  # the load server's child reads it
    try:
        return await run(plan, demo_phones())
    finally:
        os.environ.pop("CALLGUARD_LEDGER_DAYS", None)


async def bench(plan: Plan) -> list[str]:
    on = await variant(plan, "365")
    off = await variant(plan, "0")
    out = [f"== {plan.tabs} tabs, {plan.rate:g} calls/s, {plan.seconds:g} s per path"]
    for name, result in (("ledger on", on), ("ledger off", off)):
        for ph in result.phases:
            out.append(
                f"{name:>10} {ph.path:>3}: p50 {ph.percentile(0.5):6.2f} ms  "
                f"p99 {ph.percentile(0.99):6.2f} ms  worst stall {ph.server['stall_ms']:5.1f} ms"
                f"{f'  LOST {ph.lost}' if ph.lost else ''}"
            )
    for a, b in zip(on.phases, off.phases, strict=True):
        out.append(
            f"on/off {a.path}: p50 {a.percentile(0.5) / b.percentile(0.5):.2f}x, "
            f"p99 {a.percentile(0.99) / b.percentile(0.99):.2f}x"
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    plan = Plan(tabs=args.tabs, rate=args.rate, seconds=args.seconds)
    print("\n".join(asyncio.run(bench(plan))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
