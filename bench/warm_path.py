"""Warm-path benchmark (issue 3): call->paint latency, loop stalls, GC pauses, memory per tab.

Runs the gateway in its own process with N tabs connected and calls at a fixed rate through
``POST /api/calls`` and through the websocket (the lookup is warm: the embedded directory), then
the same against a baseline in the same run: the same server without the GC policy; and, for
memory, the same server with per-message deflate on (tabs connected, no calls).

    .venv/bin/python bench/warm_path.py [--tabs 5000] [--rate 1000] [--seconds 8]

Targets: p99 <= 5 ms at 1000 calls/s with 5000 tabs, no loop stall over 20 ms, <= 20 kB per
idle tab. A machine busy with other work shows its own stalls: run it on a quiet one.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.tools.loadtest import Plan, Run, add_arguments, demo_phones, plan_from, run


def ratio(baseline: float, tuned: float) -> str:
    return f"{baseline / tuned:.1f}x" if tuned > 0 else "n/a"


async def bench(plan: Plan) -> list[str]:
    phones = demo_phones()
    tuned = await run(plan, phones)
    baseline = await run(replace(plan, tune_gc=False), phones)
    deflate = await run(replace(plan, deflate=True, paths=()), phones)
    out = [f"== tuned: GC policy on, per-message deflate off (python {sys.version.split()[0]})"]
    out += tuned.summary()
    out += ["== baseline: the same server without the GC policy"]
    out += baseline.summary()
    out += ["== baseline: per-message deflate on (memory only)"]
    out += deflate.summary()[:1]
    out += ["== tuned vs baseline"]
    out += comparisons(tuned, baseline, deflate)
    return out


def comparisons(tuned: Run, baseline: Run, deflate: Run) -> list[str]:
    ct, cb = tuned.connect_server, baseline.connect_server
    lines = [
        f"during calls: worst loop stall {tuned.worst_stall_ms:.1f} ms vs "
        f"{baseline.worst_stall_ms:.1f} ms -> baseline/tuned "
        f"{ratio(baseline.worst_stall_ms, tuned.worst_stall_ms)}; longest GC pause "
        f"{tuned.worst_gc_ms:.1f} ms vs {baseline.worst_gc_ms:.1f} ms",
        f"while tabs connect and just after: worst loop stall {ct['stall_ms']:.1f} ms vs "
        f"{cb['stall_ms']:.1f} ms without the policy; longest GC pause {ct['gc_ms']:.1f} ms vs "
        f"{cb['gc_ms']:.1f} ms",
        f"memory per idle tab: {tuned.kb_per_tab:.1f} kB vs {deflate.kb_per_tab:.1f} kB with "
        f"deflate -> {ratio(deflate.kb_per_tab, tuned.kb_per_tab)}",
    ]
    for t, b in zip(tuned.phases, baseline.phases, strict=True):
        lines.append(
            f"{t.path} p99: {t.percentile(0.99):.2f} ms vs {b.percentile(0.99):.2f} ms "
            f"-> baseline/tuned {ratio(b.percentile(0.99), t.percentile(0.99))}; "
            f"max {max(t.latencies_ms, default=0):.1f} vs {max(b.latencies_ms, default=0):.1f} ms"
        )
    p99 = max(p.percentile(0.99) for p in tuned.phases) if tuned.phases else 0.0
    stall = tuned.worst_stall_ms
    lines.append(
        f"targets (tuned, during calls): p99 <= 5 ms: {'met' if p99 <= 5 else 'MISSED'} "
        f"({p99:.2f}); stall <= 20 ms: {'met' if stall <= 20 else 'MISSED'} ({stall:.1f}); "
        f"<= 20 kB/tab: {'met' if tuned.kb_per_tab <= 20 else 'MISSED'} ({tuned.kb_per_tab:.1f})"
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    plan = plan_from(parser.parse_args())
    print("\n".join(asyncio.run(bench(plan))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
