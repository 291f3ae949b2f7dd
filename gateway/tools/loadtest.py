"""Load generator: N websocket tabs on a gateway in its own process, calls at a fixed rate.

The gateway runs in a child process (:mod:`gateway.tools.loadserver`), so the load generator and the
server each get a core; the child reports what only the server can see: its memory, the event
loop's worst stall and the longest GC pause.

Calls go through ``POST /api/calls`` (path ``api``) and through the tab's own websocket (path
``ws``); call->paint is measured here, from sending the call to the paint arriving on the tab;
the tab then ends the call, as a real one would. Everything stays on 127.0.0.1, bounded in count
and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from gateway.live import wire
from gateway.live.tokens import issue_token
from gateway.tools.hoststeal import read_ticks, steal_share
from gateway.tools.loadserver import API_KEY, SECRET, ServerProcess
from gateway.tools.posting import Poster

if TYPE_CHECKING:  # the CLI imports this module for its arguments: keep that import light
    from gateway.tools.tabclient import Tab

FIRST_USER = 100_000
MAX_TABS = 20_000
POST_CONNECTIONS = 16  # kept-alive connections the api path posts calls over
OPEN_TIMEOUT = 60.0  # seconds a tab may take to connect and get its hello
PAINT_START = wire.PAINT_START.encode()  # frames arrive as bytes here


@dataclass(frozen=True, slots=True)
class Plan:
    tabs: int = 5000
    rate: float = 1000.0
    seconds: float = 8.0
    paths: tuple[str, ...] = ("api", "ws")
    tune_gc: bool = True
    deflate: bool = False
    connect_concurrency: int = 200
    seed: int = 1
    heartbeat: float = 20.0  # the production default: pings go out during the run
    bare: bool = False  # the bare push server (gateway/tools/bare.py) instead of the gateway
    url: str = ""  # a gateway this run did not start (http[s]://host:port): no server figures
    secret: str = SECRET  # signs the tabs' tokens: the target's CALLGUARD_SECRET
    api_key: str = API_KEY  # the target's CALLGUARD_API_KEY
    settle: float = 3.0  # idle after connecting, as tabs are between calls
    database_url: str = ""  # the started gateway's database; "": an SQLite file of its own


@dataclass(slots=True)
class Phase:
    path: str
    sent: int
    latencies_ms: list[float]
    server: dict[str, Any]

    @property
    def lost(self) -> int:
        return self.sent - len(self.latencies_ms)

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(slots=True)
class Run:
    plan: Plan
    connect_seconds: float = 0.0
    kb_per_tab: float = 0.0
    connect_server: dict[str, Any] = field(default_factory=dict)
    phases: list[Phase] = field(default_factory=list)

    @property
    def worst_stall_ms(self) -> float:
        return max([float(p.server["stall_ms"]) for p in self.phases] or [0.0])

    @property
    def worst_gc_ms(self) -> float:
        return max([float(p.server["gc_ms"]) for p in self.phases] or [0.0])

    def summary(self) -> list[str]:
        p = self.plan
        c = self.connect_server
        lines = [
            f"{p.tabs} tabs connected in {self.connect_seconds:.1f} s; "
            f"server memory {self.kb_per_tab:.1f} kB per idle tab; while connecting and idle: "
            f"worst loop stall {own_text(c, 'stall')}, longest GC pause {own_text(c, 'gc')} "
            f"(generation {c['gc_generation']})"
        ]
        for ph in self.phases:
            lines.append(
                f"{ph.path:>3}: {ph.sent} calls at {p.rate:g}/s, call->paint ms "
                f"p50 {ph.percentile(0.5):.2f} p95 {ph.percentile(0.95):.2f} "
                f"p99 {ph.percentile(0.99):.2f} max {max(ph.latencies_ms, default=0):.2f}"
                f"{f' LOST {ph.lost}' if ph.lost else ''}; server: worst loop stall "
                f"{own_text(ph.server, 'stall')}, longest GC pause {own_text(ph.server, 'gc')} "
                f"(generation {ph.server['gc_generation']}; {ph.server['collections']} collections)"
                f"; the host took {float(ph.server.get('steal', 0.0)):.1%} of this machine's CPU"
            )
        return lines


def own_text(server: dict[str, Any], key: str) -> str:
    """A server's worst loop stall (``stall``) or GC pause (``gc``) and, where it differs, the
    part that was its own: the rest its thread waited, ready, for a CPU the machine gave to
    something else (gateway/run/probes.py)."""
    total = float(server[f"{key}_ms"])
    own = float(server.get(f"own_{key}_ms", total))
    if total - own < 1.0:
        return f"{total:.1f} ms"
    return f"{total:.1f} ms ({own:.1f} ms of it its own, the rest waiting for a CPU)"


class Client:
    """The tabs: one websocket per user, each reading paints, timing them and ending the call.
    Calls go to ``base``; tab ``i`` connects to ``tab_bases[i % len(tab_bases)]`` (several
    processes sharing Redis), by default to ``base`` too."""

    def __init__(self, plan: Plan, base: str, tab_bases: Sequence[str] = ()) -> None:
        self.plan = plan
        self.base = base  # http://host:port
        self.tab_bases = tuple(tab_bases) or (base,)
        self.sockets: list[Tab] = []
        self.pending: dict[str, float] = {}
        self.latencies: list[float] = []
        self.drained = asyncio.Event()  # set when no call waits for its paint

    def ws_base(self, index: int) -> str:
        """Where tab ``index`` connects: ws://host:port."""
        return "ws" + self.tab_bases[index % len(self.tab_bases)].removeprefix("http")

    def user(self, index: int) -> str:
        return str(FIRST_USER + index)

    async def connect_all(self) -> None:
        from gateway.tools.tabclient import Tab

        gate = asyncio.Semaphore(self.plan.connect_concurrency)

        async def one(index: int) -> Tab:
            user = self.user(index)
            token = issue_token(self.plan.secret, user, 3600)
            uri = f"{self.ws_base(index)}/ws?token={token}&user={user}"
            async with gate:
                # The hello is the first frame: connected means the gateway holds the tab.
                connecting = Tab.connect(uri, self._on_text, self.plan.deflate)
                return await asyncio.wait_for(connecting, OPEN_TIMEOUT)

        self.sockets = list(await asyncio.gather(*(one(i) for i in range(self.plan.tabs))))

    def _on_text(self, tab: Tab, frame: bytes) -> None:
        if not frame.startswith(PAINT_START):
            return  # a clear, a renewed token: what a real tab would act on, not timed here
        now = time.perf_counter()
        call_id = orjson.loads(frame)["call_id"]
        sent = self.pending.pop(call_id, None)
        if sent is not None:
            self.latencies.append((now - sent) * 1000.0)
            tab.send(orjson.dumps({"type": "ended", "call_id": call_id}).decode())
            if not self.pending:
                self.drained.set()

    async def close(self) -> None:
        await asyncio.gather(*(tab.close() for tab in self.sockets), return_exceptions=True)


async def run_phase(
    client: Client,
    path: str,
    phones: list[str],
    rng: random.Random,
    tabs: Sequence[int] = (),
) -> int:
    """Send calls at the plan's rate for the plan's seconds, each to a tab drawn from ``tabs``
    (indices; by default all of them); how many were sent."""
    plan = client.plan
    total = int(plan.rate * plan.seconds)
    auth = {"Authorization": f"Bearer {plan.api_key}"}
    inflight: set[asyncio.Task[tuple[int, bytes]]] = set()
    poster = Poster(f"{client.base}/api/calls", auth, connections=POST_CONNECTIONS)
    try:
        if path == "api":  # as a PBX keeps its connections: their handshakes are not calls
            await poster.open(POST_CONNECTIONS)
        started = time.perf_counter()
        for i in range(total):
            delay = started + i / plan.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            index = rng.choice(tabs) if tabs else rng.randrange(plan.tabs)
            call_id = f"{path}{i}"
            phone = phones[i % len(phones)]
            client.pending[call_id] = time.perf_counter()
            if path == "api":
                body = orjson.dumps(
                    {"user_id": client.user(index), "phone": phone, "call_id": call_id}
                )
                task = asyncio.ensure_future(poster.post(body))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            else:
                frame = {"type": "call", "call_id": call_id, "phone": phone, "direction": "in"}
                client.sockets[index].send(orjson.dumps(frame).decode())
        await asyncio.gather(*inflight, return_exceptions=True)
        if client.pending:
            client.drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.drained.wait(), 5.0)
    finally:
        await poster.close()
    return total


async def run(plan: Plan, phones: Sequence[str]) -> Run:
    """One gateway process under one plan, from start to stop."""
    from gateway.run.server import raise_fd_limit

    raise_fd_limit()
    rng = random.Random(plan.seed)
    server: ServerProcess | RemoteGateway
    if plan.url:
        server = RemoteGateway(plan.url)
    else:
        server = ServerProcess(
            plan.tune_gc, plan.deflate, plan.heartbeat, plan.bare, plan.database_url
        )
    result = Run(plan)
    freezer: asyncio.Task[None] | None = None
    await server.start()
    client = Client(plan, server.base)
    try:
        before = await server.command("reset")
        started = time.perf_counter()
        await client.connect_all()
        result.connect_seconds = time.perf_counter() - started
        await asyncio.sleep(plan.settle)  # idle, as tabs are between calls
        result.connect_server = after = await server.command("reset")
        result.kb_per_tab = (after["rss_kb"] - before["rss_kb"]) / plan.tabs
        # This process holds as many sockets as the server: its own GC must not stall the clock.
        gc.collect()
        gc.freeze()
        freezer = asyncio.ensure_future(_freeze_loop())
        for path in plan.paths:
            client.latencies, client.pending = [], {}
            ticks = read_ticks()
            sent = await run_phase(client, path, list(phones), rng)
            stats = await server.command("reset")
            stats["steal"] = steal_share(ticks, read_ticks())
            result.phases.append(Phase(path, sent, client.latencies, stats))
    finally:
        if freezer is not None:
            freezer.cancel()
        await client.close()
        await server.stop()
        gc.unfreeze()
    return result


class RemoteGateway:
    """A gateway this run did not start (an operator's deployment): its process cannot be asked
    for its memory or loop stalls, so those figures read 0 and the summary leaves them out."""

    def __init__(self, url: str) -> None:
        self.base = url.rstrip("/")

    async def start(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as http, http.get(f"{self.base}/healthz") as reply:
            if reply.status >= 500:
                raise RuntimeError(f"{self.base}/healthz answered {reply.status}: not healthy")

    async def command(self, name: str) -> dict[str, Any]:
        return {"rss_kb": 0.0, "stall_ms": 0.0, "own_stall_ms": 0.0, "gc_ms": 0.0,
                "own_gc_ms": 0.0, "gc_generation": "-", "collections": 0,
                "remote": True}  # fmt: skip

    async def stop(self) -> None:
        return None


async def _freeze_loop() -> None:
    from gateway.run.gcpolicy import INTERVAL, freeze_survivors

    while True:
        await asyncio.sleep(INTERVAL)
        freeze_survivors()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callguard loadtest", description=__doc__)
    add_arguments(parser)
    return command(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tabs", type=int, default=5000, help="tabs to connect (5000)")
    parser.add_argument("--rate", type=float, default=1000.0, help="calls per second (1000)")
    parser.add_argument("--seconds", type=float, default=8.0, help="per path (8)")
    parser.add_argument("--paths", default="api,ws", help="api, ws or both (api,ws)")
    parser.add_argument(
        "--tune-gc", action=argparse.BooleanOptionalAction, default=True, help="GC policy (on)"
    )
    parser.add_argument("--deflate", action="store_true", help="per-message deflate on")
    parser.add_argument("--heartbeat", type=float, default=20.0, help="server pings, s (20)")
    parser.add_argument(
        "--url", default="", help="drive this running gateway (http[s]://host:port) instead"
    )
    parser.add_argument(
        "--secret", default="", help="with --url: its CALLGUARD_SECRET (else that variable)"
    )
    parser.add_argument(
        "--api-key", default="", help="with --url: its CALLGUARD_API_KEY (else that variable)"
    )


def plan_from(args: argparse.Namespace) -> Plan:
    if not 1 <= args.tabs <= MAX_TABS:
        raise ValueError(f"--tabs must be from 1 to {MAX_TABS}, got {args.tabs}")
    if not 0 < args.rate <= 10_000 or not 0 < args.seconds <= 600:
        raise ValueError("--rate must be in (0, 10000] and --seconds in (0, 600]")
    paths = tuple(p.strip() for p in args.paths.split(",") if p.strip())
    if not paths or any(p not in ("api", "ws") for p in paths):
        raise ValueError(f"--paths must name api and/or ws, got {args.paths!r}")
    plan = Plan(
        args.tabs, args.rate, args.seconds, paths, args.tune_gc, args.deflate,
        heartbeat=args.heartbeat,
    )  # fmt: skip
    url = getattr(args, "url", "")
    if not url:
        return plan
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--url must be http://host:port or https://host:port, got {url!r}")
    secret = args.secret or os.environ.get("CALLGUARD_SECRET", "")
    key = args.api_key or os.environ.get("CALLGUARD_API_KEY", "")
    if not secret or ("api" in paths and not key):
        raise ValueError(
            "--url needs the gateway's secret (--secret or CALLGUARD_SECRET) and, for the api "
            "path, its API key (--api-key or CALLGUARD_API_KEY)"
        )
    return replace(plan, url=url, secret=secret, api_key=key or API_KEY)


def demo_phones() -> list[str]:
    from gateway.crm.dataset import load_dataset
    from gateway.web.demo import list_numbers

    return [n["phone"] for n in list_numbers(load_dataset())]


def command(args: argparse.Namespace) -> int:
    plan = plan_from(args)
    result = asyncio.run(run(plan, demo_phones()))
    print("\n".join(result.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
