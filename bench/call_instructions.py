"""Instructions per call, counted (issue 11, item 1): the figures a busy machine cannot move.

On a shared VM the CPU time of a call moved by up to 1.6x between runs of the same command
(docs/performance.md), so a change worth 5% could not be told from the noise. Valgrind's
callgrind counts the instructions a program executes instead, and the count repeats for the
same program and input whatever else the machine does.

Each variant runs in a child process under callgrind twice: ``--warm`` calls and then ``--calls``
more, and the same with none more. The difference of the two runs' instruction counts, divided
by ``--calls``, is what one call costs, start-up and warm-up left out. Per thread: the event
loop's (the first) and, with the ledger on, its writer's. Variants, as in bench/call_cost.py (in
process, no network, sockets that take every frame):

    bare         the bare push server: JSON in, one frame out
    gateway      POST /api/calls through the app until the paint reached the tab, then the
                 call's end (its clear frame): the ledger off
    gateway+ledger  the same with the ledger on; its writer thread is counted apart (under
                 valgrind a batch gathers 50x more wall time, so its count is indicative)

The kernel's part of a call (system calls, the loopback) is not in these counts: see
bench/throughput.py for the whole server. Takes ~7 minutes (each run starts Python under
valgrind: ~1 minute).

    .venv/bin/python bench/call_instructions.py [--calls 500] [--warm 200]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = ("bare", "gateway", "gateway+ledger")


async def child(variant: str, warm: int, calls: int) -> None:
    """The calls themselves, in the process under callgrind."""
    import orjson

    from bench.call_cost import USER, NullSocket, bare_app, bench_settings, open_tab, post, settle
    from gateway.live.tabs import Tabs
    from gateway.web.app import create_app
    from gateway.web.demo import list_numbers

    settings = bench_settings(365 if variant == "gateway+ledger" else 0, tab_call_rate=1e9)
    app = create_app(settings)
    gateway = app.state.gateway
    async with app.router.lifespan_context(app):
        phones = [n["phone"] for n in list_numbers(gateway.dataset)]
        # The calls of bench/call_cost.py's "bare http" and "whole http", written out here rather
        # than shared through a helper: one more coroutine between this loop and the app is
        # walked on every resumption of settle's loop, ~9,000 instructions a call (206,907
        # against 197,619), which would count as the gateway's.
        if variant == "bare":
            socket = NullSocket()
            bare_tab = Tabs(stuck_after=5.0).open(USER, socket, socket.send_now)
            bare = bare_app({USER: bare_tab})
            for i in range(warm + calls):
                body = orjson.dumps(
                    {"user_id": USER, "phone": phones[i % len(phones)], "call_id": f"b{i}"}
                )
                await post(bare, "/api/calls", body)
                await settle(bare_tab)
            return
        tab = open_tab(gateway)
        for i in range(warm + calls):
            call_id = f"a{i}"
            body = orjson.dumps(
                {"user_id": USER, "phone": phones[i % len(phones)], "call_id": call_id}
            )
            await post(app, "/api/calls", body)
            await settle(tab)
            await gateway.calls.end_call(USER, call_id)
            await settle(tab)
        if gateway.recorder is not None:
            await gateway.recorder.flush()  # every call's row written inside the count


def count(variant: str, warm: int, calls: int, scratch: Path) -> list[int]:
    """Instructions per thread (the loop's first) of one child run under callgrind."""
    out = scratch / f"{variant}.{calls}"
    command = [
        "valgrind", "--tool=callgrind", "--separate-threads=yes",
        f"--callgrind-out-file={out}.%p", sys.executable, __file__,
        "--child", variant, "--warm", str(warm), "--calls", str(calls),
    ]  # fmt: skip
    # A fixed hash seed: set and dict orders, and so the work, are the same in every run.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{variant}: the child failed:\n{done.stderr[-2000:]}")
    totals = []
    for part in sorted(scratch.glob(f"{out.name}.*-*"), key=lambda p: int(p.name.rsplit("-")[-1])):
        found = re.search(r"^(?:summary|totals): (\d+)", part.read_text(), re.MULTILINE)
        totals.append(int(found.group(1)) if found else 0)
    return totals


def measure(variant: str, warm: int, calls: int, scratch: Path) -> list[float]:
    """Instructions per call, per thread: the loop's, then the others' together."""
    base = count(variant, warm, 0, scratch)
    more = count(variant, warm, calls, scratch)
    loop = (more[0] - base[0]) / calls
    others = (sum(more[1:]) - sum(base[1:])) / calls
    return [loop, others]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls counted (500)")
    parser.add_argument("--warm", type=int, default=200, help="calls before the count (200)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="which variants")
    args = parser.parse_args()
    if args.child:
        import uvloop

        uvloop.run(child(args.child, args.warm, args.calls))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    found: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="callguard-instructions-") as scratch:
        for variant in variants:
            print(f"== {variant}: two runs under callgrind (~2 min)", flush=True)
            found[variant] = measure(variant, args.warm, args.calls, Path(scratch))
            loop, others = found[variant]
            # A few instructions a call on other threads are start-up's stray ones: not shown.
            extra = f", other threads {others:,.0f}" if others > 0.01 * loop else ""
            print(f"  {variant:<15} loop thread {loop:,.0f} instructions a call{extra}", flush=True)
    if "bare" in found:
        bare = found["bare"][0]
        for variant in (v for v in variants if v != "bare"):
            loop, others = found[variant]
            print(
                f"{variant}/bare: loop thread {loop / bare:.2f}x"
                + (f", all threads {(loop + others) / bare:.2f}x" if others > 0.01 * loop else "")
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
