"""Abuse benchmark (issue 14): floods against a real ``callguard serve`` process, each next to a
no-flood baseline from the same process.

Per scenario the gateway runs as ``python -m gateway serve`` (and, for the REST scenarios,
``callguard fake-portal`` over a generated data file) in processes of their own. Victim users
connect and call at a steady rate: first alone (the baseline), then while the scenario's flood
runs in another process, so that the flooder's loop never times the victims. For each phase it
prints the victims' call->paint p50/p99 (from sending the ``call`` frame to the paint arriving,
in the victims' process) and how their calls came back (coloured, "CRM unavailable", late,
refused), ``/healthz`` latency (asked 4 times a second: p50, max, failures), the gateway's RSS
growth and peak over the phase, its worst loop stall since start, and what the flood got back.

Scenarios are entries of :data:`SCENARIOS`: one async flood function each (``flood(target,
seconds) -> counts``), the victims' workload and the gateway's settings. A new flood (a ping
flood, idle connections, partial headers...) is one function and one entry.

    .venv/bin/python bench/abuse.py [--seconds 10] [--only call-flood,rest-drain]

Goals (issue 14): under a flood the victims' p99 <= 50 ms, ``/healthz`` within 1 s, memory
growth a few tens of MB at most. Everything stays on 127.0.0.1, bounded in count and time. The
gateway, the flooder, the victims and the fake portal share this machine's cores, where a real
attacker would be elsewhere: the figures under flood are pessimistic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import count
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.cold_path import data_file
from gateway.live.calls import FAILED_REASON, LATE_REASON
from gateway.live.tokens import issue_token
from gateway.run.server import raise_fd_limit
from gateway.tools import floods

SECRET = "abuse-bench-secret-0123456789abcdef-0123"
API_KEY = "abuse-bench-api-key-0123456789"
FLOODER = "100"
MAX_FLOOD_FRAMES = 300_000  # a bound on any flood, whatever --seconds says
COMPANIES = 600  # in the generated data file: company i has the number +7 901 i (7 digits)
GOAL_P99_MS, GOAL_HEALTHZ_MS, GOAL_RSS_MB = 50.0, 1000.0, 30.0


@dataclass(frozen=True)
class Target:
    base: str  # http://127.0.0.1:PORT

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.base.removeprefix("http://").rpartition(":")
        return host, int(port)

    def ws(self, user: str) -> str:
        token = issue_token(SECRET, user, 3600)
        return self.base.replace("http://", "ws://") + f"/ws?token={token}"


def call(call_id: str, phone: str) -> str:
    return orjson.dumps({"type": "call", "call_id": call_id, "phone": phone}).decode()


def company_phone(i: int) -> str:
    return f"+7 901 {i:07d}"  # red for users 6-9: an IN_WORK company of users 1-5


# -- floods: each runs in a process of its own, for `seconds`, and returns what it got back ----


async def call_flood(target: Target, seconds: float) -> dict[str, int]:
    """One tab sends ``call`` frames with distinct numbers as fast as its socket takes them,
    reading the answers meanwhile; reconnects when the gateway closes it."""
    return await _flood(target, seconds, rate=None)


async def paced_cold_flood(target: Target, seconds: float) -> dict[str, int]:
    """One tab sends 20 ``call`` frames a second, each a number nobody has: a cold lookup."""
    return await _flood(target, seconds, rate=20.0)


async def _flood(target: Target, seconds: float, rate: float | None) -> dict[str, int]:
    got: Counter[str] = Counter()
    numbers = count()
    end = time.monotonic() + seconds
    while time.monotonic() < end and got["sent"] < MAX_FLOOD_FRAMES:
        try:
            flooder = connect(target.ws(FLOODER), compression=None, max_queue=None, close_timeout=1)
            async with flooder as ws:
                await ws.recv()  # hello
                reader = asyncio.ensure_future(_tally(ws, got))
                try:  # a send the gateway's backpressure holds up ends with the flood too
                    async with asyncio.timeout(max(0.0, end - time.monotonic())):
                        await _send(ws, got, numbers, end, rate)
                except TimeoutError:  # paced: waiting for its next turn; else a send held up
                    if rate is None:
                        got["a send held up by backpressure at the end"] += 1
                finally:
                    reader.cancel()
        except ConnectionClosed as closed:
            got[f"closed {closed.rcvd.code if closed.rcvd else 1006}"] += 1
        except (OSError, InvalidStatus):
            got["connect failed"] += 1
            await asyncio.sleep(0.1)
    return dict(got)


async def _send(
    ws: ClientConnection, got: Counter[str], numbers: Iterator[int], end: float, rate: float | None
) -> None:
    started = time.monotonic()
    while (now := time.monotonic()) < end and got["sent"] < MAX_FLOOD_FRAMES:
        n = next(numbers)
        if rate is not None:
            await asyncio.sleep(max(0.0, started + got["sent"] / rate - now))
        await ws.send(call(f"f{n}", f"+7 926 {n:07d}"))
        got["sent"] += 1
        if n % 64 == 0:
            await asyncio.sleep(0)  # let the reader read: a tab that stops reading is closed


async def _tally(ws: ClientConnection, got: Counter[str]) -> None:
    async for frame in ws:
        doc = orjson.loads(frame)
        got[doc["code"] if doc["type"] == "error" else outcome(doc)] += 1


def outcome(doc: dict[str, object]) -> str:
    """``coloured``, ``unavailable`` (the CRM failed or refused), ``late`` or ``none`` for a
    paint; the type of any other frame."""
    if doc["type"] != "paint":
        return str(doc["type"])
    reasons = {FAILED_REASON: "unavailable", LATE_REASON: "late"}
    return reasons.get(str(doc.get("text")), "coloured" if doc["colour"] != "none" else "none")


async def ping_flood(target: Target, seconds: float) -> dict[str, int]:
    """Four websockets (two with a valid token, two with a forged one, which the gateway holds
    for its close window) send pings and never read the pongs; each reconnects when closed."""
    host, port = target.host_port()
    got: Counter[str] = Counter()
    forged = issue_token("not-the-gateway-secret-0123456789abcdef", FLOODER, 3600)

    async def one(token: str, kind: str) -> None:
        while True:
            result = await floods.ping_flood(host, port, f"/ws?token={token}", pings=200_000)
            got["sent"] += result.sent
            got[f"{kind}: {'closed by the gateway' if result.closed else 'ran to the end'}"] += 1

    valid = target.ws(FLOODER).split("token=", 1)[1]
    runs = [one(valid, "valid token"), one(valid, "valid token")]
    runs += [one(forged, "forged token"), one(forged, "forged token")]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await asyncio.gather(*runs)
    return dict(got)


IDLE_CAP = 5000  # CALLGUARD_MAX_CONNECTIONS in the idle-connections scenario
IDLE_FLOOD = 6000  # connections it opens: a thousand past the cap


async def idle_connections(target: Target, seconds: float) -> dict[str, int]:
    """Opens :data:`IDLE_FLOOD` connections that send nothing and holds them for the phase."""
    return await _held(target, seconds, floods.idle_connections, IDLE_FLOOD)


async def partial_headers(target: Target, seconds: float) -> dict[str, int]:
    """Slowloris: 3000 connections send half a request head and stop, held for the phase."""
    return await _held(target, seconds, floods.partial_headers, 3000)


async def _held(
    target: Target,
    seconds: float,
    flood: Callable[[str, int, int], contextlib.AbstractAsyncContextManager[floods.Held]],
    n: int,
) -> dict[str, int]:
    host, port = target.host_port()
    started = time.monotonic()
    async with flood(host, port, n) as held:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds - (time.monotonic() - started))):
                await held.wait_closed(n)
        got = {"sent": held.opened, "not connected": held.failed, "closed": held.closed}
        got |= {f"HTTP {status}": k for status, k in held.statuses.items()}
    return got


def ready() -> None:
    return None


def run_flood(name: str, target: Target, seconds: float) -> dict[str, int]:
    raise_fd_limit()  # the connection floods hold thousands of sockets
    return asyncio.run(SCENARIOS[name].flood(target, seconds))


# -- scenarios ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Victims:
    users: tuple[str, ...]
    rate: float  # calls per second, per user
    cold: bool  # each call a company number not called before (REST: a cold lookup)


@dataclass(frozen=True)
class Scenario:
    about: str
    flood: Callable[[Target, float], Coroutine[Any, Any, dict[str, int]]]
    victims: Victims
    env: Mapping[str, str] = field(default_factory=dict)
    portal_latency_ms: float | None = None  # None: the embedded data file; else REST
    rss_goal_mb: float = GOAL_RSS_MB


WARM_VICTIMS = Victims(("6", "7", "8", "9"), rate=5.0, cold=False)
SCENARIOS: dict[str, Scenario] = {
    "call-flood": Scenario(
        "one tab floods call frames with distinct numbers (data file, production settings)",
        call_flood,
        WARM_VICTIMS,
    ),
    "call-flood-slow-crm": Scenario(
        "the same flood, the tab's call rate opened up (1000/s), against a CRM answering in "
        "300 ms with a budget that lets everything through: the in-flight bound is what holds",
        call_flood,
        WARM_VICTIMS,
        {
            "CALLGUARD_TAB_CALL_RATE": "1000",
            "CALLGUARD_RATE_BURST": "10000",
            "CALLGUARD_RATE_PER_SECOND": "10000",
        },
        portal_latency_ms=300.0,
    ),
    "ping-flood": Scenario(
        "four websockets (two with a forged token) send pings and never read the pongs",
        ping_flood,
        WARM_VICTIMS,
    ),
    "idle-connections": Scenario(
        f"{IDLE_FLOOD} connections that send nothing, against CALLGUARD_MAX_CONNECTIONS="
        f"{IDLE_CAP}: the ones past the cap get 503; the victims' tabs and /healthz go on",
        idle_connections,
        WARM_VICTIMS,
        {"CALLGUARD_MAX_CONNECTIONS": str(IDLE_CAP)},
        # Each connection held costs the kernel and uvicorn a few kB: the cap is what bounds
        # the growth here (5000 x ~7 kB), so the goal scales with it.
        rss_goal_mb=IDLE_CAP * 10 / 1024,
    ),
    "partial-headers": Scenario(
        "3000 connections send half a request head and stop (slowloris): 408 after "
        "CALLGUARD_HEADER_TIMEOUT (5 s here)",
        partial_headers,
        WARM_VICTIMS,
        {"CALLGUARD_HEADER_TIMEOUT": "5"},
    ),
    "rest-drain": Scenario(
        "one tab at 20 distinct cold numbers/s drains the portal's REST budget (cloud: 2/s, "
        "burst 50) while another user's cold numbers must still be coloured",
        paced_cold_flood,
        Victims(("6",), rate=1.0, cold=True),
        portal_latency_ms=50.0,
    ),
}


# -- the processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def fake_portal(data: str, latency_ms: float) -> AsyncIterator[str]:
    """``callguard fake-portal`` over ``data``; yields its CALLGUARD_PORTAL_URL."""
    args = ["fake-portal", "--port", "0", "--data", data, "--latency", str(latency_ms)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,  # the gateway's
        # connections cut at its exit are tracebacks there, and no figure of ours
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        await proc.stdout.readline()  # "fake portal listening on URL"
        line = (await proc.stdout.readline()).decode().strip()
        yield line.removeprefix("CALLGUARD_PORTAL_URL=")
    finally:
        await stop(proc, signal.SIGTERM)


@contextlib.asynccontextmanager
async def gateway(env: Mapping[str, str], log: Path) -> AsyncIterator[tuple[Target, int]]:
    """``callguard serve`` with ``env``; yields its address and pid once it answers."""
    port = free_port()
    keep = {k: v for k, v in os.environ.items() if not k.startswith("CALLGUARD_")}
    settings = {
        "CALLGUARD_SECRET": SECRET,
        "CALLGUARD_API_KEY": API_KEY,
        "CALLGUARD_HOST": "127.0.0.1",
        "PORT": str(port),
        "CALLGUARD_LOG_LEVEL": "warning",
        "CALLGUARD_DATABASE_URL": "sqlite:///:memory:",
        **env,
    }
    with log.open("w") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", env={**keep, **settings}, stderr=stderr
        )
    target = Target(f"http://127.0.0.1:{port}")
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(target.base + "/healthz") as reply:
                        if reply.status == 200:
                            break
                if proc.returncode is not None:
                    raise RuntimeError(f"the gateway exited: see {log}")
                await asyncio.sleep(0.05)
        yield target, proc.pid
    finally:
        await stop(proc, signal.SIGINT)


async def stop(proc: asyncio.subprocess.Process, sig: int) -> None:
    if proc.returncode is None:
        proc.send_signal(sig)
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the peak since the last reset) of ``pid``, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def reset_peak(pid: int) -> None:
    with contextlib.suppress(OSError):  # "5": reset the peak RSS (Linux >= 4.0)
        Path(f"/proc/{pid}/clear_refs").write_text("5")


async def metrics(target: Target) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(target.base + "/metrics", headers=headers) as r,
    ):
        text = await r.text()
    out = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name and not line.startswith("#"):
            out[name] = float(value)
    return out


# -- the victims and the health probe ------------------------------------------------------------


@dataclass
class Victim:
    target: Target
    user: str
    numbers: Iterator[str]
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    pending: dict[str, float] = field(default_factory=dict)
    ws: ClientConnection | None = None
    ids: Iterator[int] = field(default_factory=count)
    reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await connect(self.target.ws(self.user), compression=None, max_queue=None)
        await self.ws.recv()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.ws:
                doc = orjson.loads(frame)
                if doc["type"] == "error":
                    self.outcomes[f"refused {doc['code']}"] += 1
                if doc["type"] != "paint" or doc["call_id"] not in self.pending:
                    continue
                self.latencies.append(
                    (time.perf_counter() - self.pending.pop(doc["call_id"])) * 1e3
                )
                self.outcomes[outcome(doc)] += 1
                await self.ws.send(
                    orjson.dumps({"type": "ended", "call_id": doc["call_id"]}).decode()
                )

    async def calls(self, seconds: float, rate: float) -> None:
        assert self.ws is not None
        started = time.monotonic()
        for i in range(int(seconds * rate)):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            call_id = f"v{self.user}-{next(self.ids)}"
            self.pending[call_id] = time.perf_counter()
            await self.ws.send(call(call_id, next(self.numbers)))

    def take(self) -> tuple[list[float], Counter[str]]:
        """This phase's figures; calls still without a paint count as lost."""
        got, outcomes = self.latencies, self.outcomes
        refused = sum(v for k, v in outcomes.items() if k.startswith("refused"))
        if len(self.pending) > refused:  # an error frame does not say which call it refuses
            outcomes["lost"] += len(self.pending) - refused
        self.latencies, self.outcomes, self.pending = [], Counter(), {}
        return got, outcomes


async def probe_health(target: Target, seconds: float) -> tuple[list[float], int]:
    """``/healthz`` 4 times a second (the answer's latency, in ms); failures: no 200 in 5 s."""
    times, failed = [], 0
    end = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while time.monotonic() < end:
            started = time.perf_counter()
            try:
                async with http.get(target.base + "/healthz") as reply:
                    await reply.read()
                    ok = reply.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                times.append((time.perf_counter() - started) * 1e3)
            else:
                failed += 1
            await asyncio.sleep(0.25)
    return times, failed


# -- one scenario -------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    latencies: list[float]
    outcomes: Counter[str]
    health: list[float]
    health_failed: int
    rss_growth_mb: float
    peak_growth_mb: float
    stall_ms: float
    flood: dict[str, int] = field(default_factory=dict)

    def row(self) -> str:
        lat, h = self.latencies, self.health
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        return (
            f"  {self.name:<9} victims p50 {pct(lat, 0.5):7.1f} p99 {pct(lat, 0.99):7.1f} max "
            f"{max(lat, default=float('nan')):7.1f} ms (n {len(lat)}: {outcomes}) | /healthz p50 "
            f"{pct(h, 0.5):6.1f} max {max(h, default=float('nan')):7.1f} ms, failed "
            f"{self.health_failed} | RSS +{self.rss_growth_mb:.1f} MB (peak +"
            f"{self.peak_growth_mb:.1f}) | worst loop stall since start {self.stall_ms:.0f} ms"
        )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def phase(
    name: str, victims: list[Victim], scenario: Scenario, target: Target, pid: int, seconds: float,
    flood: Awaitable[dict[str, int]] | None,
) -> Phase:  # fmt: skip
    before = memory_kb(pid)["VmRSS"]
    reset_peak(pid)
    flooding = asyncio.ensure_future(flood) if flood is not None else None
    rate = scenario.victims.rate
    calling = asyncio.gather(*(v.calls(seconds, rate) for v in victims))
    health, failed = await probe_health(target, seconds)
    await calling
    counts = await flooding if flooding is not None else {}
    await asyncio.sleep(2.0)  # the last calls' paints (a cold lookup within its 1.5 s deadline)
    after = memory_kb(pid)
    stall = (await metrics(target)).get("callguard_loop_stall_max_seconds", 0.0) * 1e3
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    for victim in victims:
        lat, out = victim.take()
        latencies += lat
        outcomes += out
    return Phase(
        name, latencies, outcomes, health, failed, (after["VmRSS"] - before) / 1024,
        (after["VmHWM"] - before) / 1024, stall, counts,
    )  # fmt: skip


async def run_scenario(name: str, scenario: Scenario, seconds: float, data: str) -> list[str]:
    env = {"CALLGUARD_DIRECTORY": data, **scenario.env}
    log = Path(tempfile.mkdtemp(prefix="abuse-")) / "gateway.log"
    async with contextlib.AsyncExitStack() as stack:
        if scenario.portal_latency_ms is not None:
            url = await stack.enter_async_context(fake_portal(data, scenario.portal_latency_ms))
            env["CALLGUARD_PORTAL_URL"] = url
        target, pid = await stack.enter_async_context(gateway(env, log))
        cold = count(1)
        victims = []
        for user in scenario.victims.users:
            if scenario.victims.cold:
                numbers = (company_phone(next(cold) % COMPANIES) for _ in count())
            else:  # ten numbers a victim, over and over: warm after the first call each
                numbers = (company_phone(i % 10) for i in count())
            victims.append(Victim(target, user, numbers))
        for victim in victims:
            await victim.open()
        rate = scenario.victims.rate
        warm_up = 3 if scenario.victims.cold else 10  # each warm number called once
        await asyncio.gather(*(v.calls(warm_up / rate, rate) for v in victims))
        await asyncio.sleep(2.0)
        for victim in victims:
            victim.take()  # the warm-up: the first calls, the portal session, the cache
        baseline = await phase("baseline", victims, scenario, target, pid, seconds, None)
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            await loop.run_in_executor(pool, ready)  # the flooder's process started and imported
            flood = loop.run_in_executor(pool, run_flood, name, target, seconds)
            flooded = await phase("flood", victims, scenario, target, pid, seconds, flood)
        after = await metrics(target)
    lines = [f"== {name}: {scenario.about}", baseline.row(), flooded.row()]
    sent = flooded.flood.pop("sent", 0)
    got = ", ".join(f"{k} {v}" for k, v in sorted(flooded.flood.items(), key=lambda kv: -kv[1]))
    lines.append(
        f"  the flood sent {sent} (frames, pings or connections) in {seconds:g} s; got back: {got}"
    )
    refused = {
        k.split("{", 1)[1].rstrip("}"): int(v)
        for k, v in after.items()
        if k.startswith("callguard_calls_refused_total{") and v
    }
    peak = {
        s: after.get(f'callguard_calls_in_flight_peak{{scope="{s}"}}', 0) for s in ("all", "user")
    }
    warnings = warnings_in(log)
    lines.append(
        f"  gateway: calls in flight peak {peak['all']:.0f} in all, {peak['user']:.0f} for one "
        f"user; refused {refused or 'none'}; warnings logged: {warnings}"
    )
    lines.append("  " + verdict(flooded, scenario.victims.cold, scenario.rss_goal_mb))
    return lines


def warnings_in(log: Path) -> int:
    return sum(" WARNING " in line for line in log.read_text().splitlines())


def verdict(p: Phase, cold: bool, rss_goal_mb: float) -> str:
    coloured, total = p.outcomes["coloured"], p.outcomes.total()
    checks = [
        (f"victims' calls coloured ({coloured} of {total})", coloured == total)
        if cold  # a cold lookup is two portal requests: its latency is the portal's
        else (f"victims' p99 <= {GOAL_P99_MS:g} ms", pct(p.latencies, 0.99) <= GOAL_P99_MS),
        (f"/healthz within {GOAL_HEALTHZ_MS:g} ms", not p.health_failed and max(p.health, default=0) <= GOAL_HEALTHZ_MS),
        (f"RSS growth <= {rss_goal_mb:.0f} MB", p.peak_growth_mb <= rss_goal_mb),
    ]  # fmt: skip
    return "goals under flood: " + "; ".join(
        f"{c}: {'met' if ok else 'NOT met'}" for c, ok in checks
    )


async def bench(names: list[str], seconds: float, data: str) -> None:
    print(f"{os.cpu_count()} cores; each phase {seconds:g} s; python {sys.version.split()[0]}")
    for name in names:
        print("\n".join(await run_scenario(name, SCENARIOS[name], seconds, data)), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase (10; at most 60)")
    parser.add_argument("--only", default="", help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not 0 < args.seconds <= 60:
        parser.error(
            f"unknown scenarios {unknown} (known: {', '.join(SCENARIOS)})"
            if unknown
            else "--seconds must be in (0, 60]"
        )
    data = data_file(COMPANIES)
    try:
        asyncio.run(bench(names, args.seconds, data))
    finally:
        Path(data).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
