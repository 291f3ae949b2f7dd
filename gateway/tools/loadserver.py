"""The gateway under load, in a child process of the load generator
(:mod:`gateway.tools.loadtest`).

``python -m gateway.tools.loadserver [--no-tune-gc] [--deflate] [--heartbeat S] [--bare
[--clears]] [--database-url URL] [--redis-url URL --redis-prefix P]`` serves a gateway (or, with
``--bare``, the bare push server of :mod:`gateway.tools.bare`, with ``--clears`` answering each
``ended`` with a ``clear`` as the gateway does) on a free loopback port, with
``--redis-url`` as one of several processes sharing Redis (``CALLGUARD_REDIS_URL``:
:mod:`gateway.live.redisfanout`). It prints ``{"port": N}`` once ready, then answers ``stats`` /
``reset`` / ``quit`` on stdin with one JSON line on stdout: its memory, CPU time, the event
loop's worst stall (:class:`gateway.run.probes.LagProbe`), the longest GC pause and, sharing
Redis, the fanout's health. Apart from the generator so that each gets a core, and so that the
generator's own sockets never show in the server's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SECRET = "loadtest-secret-0123456789abcdef-0123456789"
API_KEY = "loadtest-api-key-0123456789"
REDIS_WAIT = 10.0  # seconds a process sharing Redis waits to subscribe before it says it is ready


class ServerProcess:
    """The gateway under test, in a child process driven over stdin/stdout."""

    def __init__(
        self,
        tune_gc: bool,
        deflate: bool,
        heartbeat: float,
        bare: bool = False,
        database_url: str = "",
        redis: tuple[str, str] | None = None,  # (URL, key prefix): processes sharing Redis
        clears: bool = False,  # the bare server answers ``ended`` with ``clear``
    ) -> None:
        self.flags = ["--tune-gc" if tune_gc else "--no-tune-gc", "--heartbeat", str(heartbeat)]
        self.flags += ["--deflate"] if deflate else []
        self.flags += ["--bare"] if bare else []
        self.flags += ["--clears"] if clears else []
        self.flags += ["--database-url", database_url] if database_url else []
        if redis is not None:
            self.flags += ["--redis-url", redis[0], "--redis-prefix", redis[1]]
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.tools.loadserver", *self.flags,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        ready = await self._line(wait=60)
        self.port = int(ready["port"])

    async def command(self, name: str) -> dict[str, Any]:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(name.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self._line(wait=30)

    async def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            await self.command("quit")
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    async def _line(self, wait: float) -> dict[str, Any]:
        assert self.proc is not None
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), wait)
        if not raw:
            raise RuntimeError("the gateway under test exited")
        doc: dict[str, Any] = json.loads(raw)
        return doc


class CpuMeter:
    """CPU microseconds one call costs the server under test: its process's CPU time over a
    phase of calls, less what it spends idle in as long (heartbeat pings to thousands of tabs,
    probes), divided by the calls. The machine's other work hardly changes it, where latencies
    follow whatever else runs beside (on a shared machine CPU time still grows a little: caches
    and cores are shared too)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.idle_per_second = 0.0
        self.loop_idle_per_second = 0.0  # the event loop's thread alone
        self._started = 0.0
        self._stats: dict[str, Any] = {}

    async def idle(self, seconds: float) -> None:
        """Measure the idle CPU: no calls for ``seconds``."""
        await self.start()
        await asyncio.sleep(seconds)
        stats = await self.server.command("stats")
        elapsed = time.perf_counter() - self._started
        self.idle_per_second = (stats["cpu_s"] - self._stats["cpu_s"]) / elapsed
        self.loop_idle_per_second = (stats["loop_cpu_s"] - self._stats["loop_cpu_s"]) / elapsed

    async def start(self) -> None:
        self._stats = await self.server.command("stats")
        self._started = time.perf_counter()

    def count_per_call(self, key: str, stats: dict[str, Any], calls: int) -> float:
        """A counter of the server's (``writes``: its write system calls) per call, from
        :meth:`start` to ``stats``; idle work included (nan where /proc is not Linux's)."""
        if key not in stats or key not in self._stats:
            return float("nan")
        return float(stats[key] - self._stats[key]) / max(1, calls)

    def per_call(self, stats: dict[str, Any], calls: int) -> float:
        """From :meth:`start` to ``stats`` (the server's, taken after the phase)."""
        return self._per_call("cpu_s", self.idle_per_second, stats, calls)

    def loop_per_call(self, stats: dict[str, Any], calls: int) -> float:
        """As :meth:`per_call`, the event loop's thread alone: the gateway's other threads (the
        ledger writer) left out. A server whose loop thread is near a whole core is saturated;
        one that fails well below that is held up by something else."""
        return self._per_call("loop_cpu_s", self.loop_idle_per_second, stats, calls)

    def _per_call(self, key: str, idle_rate: float, stats: dict[str, Any], calls: int) -> float:
        idle = idle_rate * (time.perf_counter() - self._started)
        return float(stats[key] - self._stats[key] - idle) / max(1, calls) * 1e6

    def loop_busy(self, stats: dict[str, Any]) -> float:
        """The event loop thread's CPU from :meth:`start` to ``stats``, as a share of one core
        (idle work included)."""
        elapsed = time.perf_counter() - self._started
        return float(stats["loop_cpu_s"] - self._stats["loop_cpu_s"]) / max(elapsed, 1e-9)


def _io() -> dict[str, int]:
    """This process's read and write system calls so far (Linux's /proc; else nothing)."""
    try:
        with open("/proc/self/io") as io:
            counts = dict(line.split(":", 1) for line in io)
    except OSError:
        return {}
    return {"reads": int(counts["syscr"]), "writes": int(counts["syscw"])}


def _rss_kb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024.0


def child(
    tune_gc: bool,
    deflate: bool,
    heartbeat: float = 20.0,
    bare: bool = False,
    database_url: str = "",
    redis: tuple[str, str] | None = None,
    clears: bool = False,
) -> None:
    import uvloop

    from gateway.run.server import raise_fd_limit

    raise_fd_limit()
    # Unset: an SQLite file, as `callguard serve` keeps by default, in a folder that goes with
    # the process. Not ":memory:": at 3500 calls/s for 60 s its ledger writes stalled calls in
    # bursts (p99 per 5 s 39-134 ms in four of twelve slices, the ledger's queue up to 4600),
    # where a file held 1.8-5.5 ms (one slice 13.5 ms) and the writer kept up.
    with tempfile.TemporaryDirectory(prefix="callguard-loadtest-") as scratch:
        url = database_url or f"sqlite:///{Path(scratch) / 'callguard.sqlite3'}"
        uvloop.run(_child(tune_gc, deflate, heartbeat, bare, url, redis, clears))


async def _child(
    tune_gc: bool,
    deflate: bool,
    heartbeat: float,
    bare: bool,
    database_url: str,
    redis: tuple[str, str] | None,
    clears: bool = False,
) -> None:
    import socket

    import uvicorn

    from gateway.run.config import DEFAULT_REDIS_PREFIX, Settings
    from gateway.run.server import serve, uvicorn_config
    from gateway.tools.bare import bare_app
    from gateway.web.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = Settings(
        secret=SECRET,
        host="127.0.0.1",
        port=port,
        api_key=API_KEY,
        log_level="warning",
        heartbeat=heartbeat,
        # A few load-test tabs may stand for many managers: the per-tab call rate is not measured.
        tab_call_rate=1000.0,
        ledger_days=int(os.environ.get("CALLGUARD_LEDGER_DAYS", "365")),  # 0: the ledger off
        # A flag, not CALLGUARD_DATABASE_URL: a load test must never write to the database an
        # operator's environment names. Unset: a file that goes with the process (child()).
        database_url=database_url,
        redis_url=redis[0] if redis is not None else None,
        redis_prefix=redis[1] if redis is not None else DEFAULT_REDIS_PREFIX,
    )
    app = bare_app(clears) if bare else create_app(settings)
    probed = app.state.bare if bare else app.state.gateway  # both have tabs, lag and gc
    config = uvicorn_config(app, settings, per_message_deflate=deflate, log_config=None)
    server = uvicorn.Server(config)
    started = asyncio.Event()
    serving = asyncio.ensure_future(serve(server, sockets=[sock], tune_gc=tune_gc, started=started))
    await started.wait()
    shared = None if bare else probed.shared
    if shared is not None:
        # Ready means subscribed: a paint published by a sibling before that would be lost to
        # this process's tabs. Redis down: start anyway, the stats say so ("fanout").
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REDIS_WAIT):
                await shared.wait_until(lambda fanout: fanout.connected)
    print(json.dumps({"port": port}), flush=True)
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while command := (await reader.readline()).decode().strip():
        if command == "quit":
            break
        stats: dict[str, object] = {
            "rss_kb": _rss_kb(),
            "tabs": probed.tabs.count if not bare else probed.count,
            "stall_ms": probed.lag.worst * 1000.0,
            "own_stall_ms": probed.lag.worst_own * 1000.0,  # less waiting for a CPU
            "gc_ms": probed.gc.worst * 1000.0,
            "own_gc_ms": probed.gc.worst_own * 1000.0,
            "gc_generation": probed.gc.worst_generation,
            "collections": probed.gc.collections,
            # The event loop's thread alone (this runs on it): the ledger writer's thread apart.
            # Read before the process's, so it can never be the larger.
            "loop_cpu_s": time.thread_time(),
            # CPU seconds this process used so far: per call, the load on the machine hardly
            # changes it, where latency figures follow whatever else runs beside.
            "cpu_s": time.process_time(),
            **_io(),  # a system call is dear on a virtual machine: how many a call costs
        }
        if shared is not None:  # sharing Redis: connected? frames dropped on the way?
            stats["fanout"] = shared.health()
        if command == "reset":
            probed.lag.reset()
            probed.gc.reset()
        print(json.dumps(stats), flush=True)
    server.should_exit = True
    await serving
    print(json.dumps({"stopped": True}), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.tools.loadserver", description=__doc__)
    parser.add_argument("--tune-gc", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--deflate", action="store_true")
    parser.add_argument("--heartbeat", type=float, default=20.0)
    parser.add_argument("--bare", action="store_true", help="the bare push server instead")
    parser.add_argument("--clears", action="store_true", help="--bare answers ended with clear")
    parser.add_argument("--database-url", default="", help="else an SQLite file of its own")
    parser.add_argument("--redis-url", default="", help="share this Redis with other processes")
    parser.add_argument("--redis-prefix", default="callguard:", help="with --redis-url: its keys")
    args = parser.parse_args(argv)
    if args.clears and not args.bare:
        parser.error("--clears is an option of --bare: the gateway always answers ended")
    redis = (args.redis_url, args.redis_prefix) if args.redis_url else None
    child(
        args.tune_gc, args.deflate, args.heartbeat, args.bare, args.database_url, redis,
        args.clears,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
