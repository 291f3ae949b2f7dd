"""Per-call CPU cost by stage (issue 11, item 1), next to a bare push server's, in one run.

Everything runs in this process on one event loop, with no network: each stage is timed with
``time.process_time`` over many repetitions, so the figures are CPU microseconds per call, not
latency. Stages of one call:

    intake     ws: decode the tab's frame;  http: the ASGI request up to the pipeline's entry
    normalise  the phone to its E.164 key
    lookup     the directory behind the cache, warm (a hit)
    decide     rules.decide (the reason text included)
    encode     the paint frame (orjson)
    deliver    to the user's tab: fan-out, the tab's outbox, the send (to a socket that drops it)

"whole" runs the real thing end to end: the ``/ws`` frame handler and ``POST /api/calls`` through
the app, until the paint reached the tab's socket; "glue" is what the whole ws call costs beyond
its stages (tasks, timers, call state, metrics), "http intake" what ``POST`` costs beyond the ws
frame. All on uvloop, the server's loop (the first figures of issue 11 were on asyncio's own).
The bare server does only what any push server must: parse the JSON, look the user's tab up,
encode and send one frame (no auth, lookup or rules).

No network here: the real servers' CPU per call, sockets included, is what bench/throughput.py
prints ("server CPU"), and it is an order of magnitude more.

    .venv/bin/python bench/call_cost.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.live import wire
from gateway.live.socket import _handle
from gateway.live.tabs import Tab
from gateway.run.config import Settings
from gateway.web.app import create_app
from gateway.web.demo import list_numbers
from rules import decide

SECRET = "bench-secret-0123456789abcdef-0123456789"
API_KEY = "bench-api-key"
USER = "7"


class NullSocket:
    """A tab's websocket that takes every frame at once and keeps none."""

    sent = 0

    async def send_text(self, data: str) -> None:
        NullSocket.sent += 1

    def send_now(self, data: str) -> bool:
        """As the real server's protocol offers it (gateway/run/tabsocket.py): written at once."""
        NullSocket.sent += 1
        return True

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        return None


def cpu_us(repeat: int, step: Callable[[int], object]) -> float:
    gc.collect()
    started = time.process_time()
    for i in range(repeat):
        step(i)
    return (time.process_time() - started) / repeat * 1e6


async def acpu_us(repeat: int, step: Callable[[int], Awaitable[object]]) -> float:
    gc.collect()
    started = time.process_time()
    for i in range(repeat):
        await step(i)
    return (time.process_time() - started) / repeat * 1e6


async def settle(tab: Tab) -> None:
    """Let the tab's sender task run until the outbox is empty."""
    while len(tab.outbox) or tab._sender is not None:  # noqa: ASYNC110 - an Event would add wakeups to a CPU figure
        await asyncio.sleep(0)


async def sent_after(before: int) -> None:
    """Wait until the socket got a frame more than ``before``: the paint of a call whose decision
    may run in a task of its own."""
    while NullSocket.sent <= before:  # noqa: ASYNC110 - as settle: no wakeups of its own
        await asyncio.sleep(0)


def http_scope(path: str, body_len: int) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {API_KEY}".encode()),
            (b"content-length", str(body_len).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def post(app: Any, path: str, body: bytes) -> int:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(http_scope(path, len(body)), receive, send)
    return status


def bare_app(tabs: dict[str, Tab]) -> Any:
    """The bare push server: JSON in, one frame out to the user's tab, nothing else."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        doc = orjson.loads(body)
        tab = tabs.get(doc["user_id"])
        if tab is not None:
            frame = orjson.dumps({"type": "paint", "call_id": doc["call_id"], "seq": 1}).decode()
            tab.push(doc["call_id"], frame)
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})

    return app


def bench_settings(ledger_days: int, **changes: Any) -> Settings:
    """An in-process gateway's settings (no server: host and port are not used)."""
    base = Settings(secret=SECRET, api_key=API_KEY, host="127.0.0.1", port=0)
    return base.but(ledger_days=ledger_days, **changes)


def open_tab(gateway: Any) -> Tab:
    """The user's one tab, taking every frame at once as the real server's protocol does."""
    socket = NullSocket()
    return gateway.tabs.open(USER, socket, socket.send_now)  # type: ignore[no-any-return]


async def measure(calls: int, ledger_days: int = 365) -> list[str]:
    settings = bench_settings(ledger_days, tab_call_rate=1e9)  # one tab sends every call here
    app = create_app(settings)
    gateway = app.state.gateway
    out: list[str] = []
    async with app.router.lifespan_context(app):
        data = gateway.dataset
        phones = [n["phone"] for n in list_numbers(data)]
        tab = open_tab(gateway)
        keys = [gateway.calls.normalize(p) for p in phones]
        for key in keys:  # warm the cache
            await gateway.directory.lookup(key)
        findings = [await gateway.directory.lookup(k) for k in keys]
        decisions = [decide(f, USER, gateway.policy) for f in findings]
        frames_in = [
            orjson.dumps(
                {"type": "call", "call_id": f"c{i}", "phone": phones[i % len(phones)]}
            ).decode()
            for i in range(len(phones))
        ]
        n = len(phones)
        stage: dict[str, float] = {}
        stage["intake ws"] = cpu_us(calls, lambda i: wire.decode(frames_in[i % n], 4096))
        stage["normalise"] = cpu_us(calls, lambda i: gateway.calls.normalize(phones[i % n]))
        stage["lookup"] = await acpu_us(calls, lambda i: gateway.directory.lookup(keys[i % n]))
        stage["decide"] = cpu_us(calls, lambda i: decide(findings[i % n], USER, gateway.policy))
        # What a call pays: the decision remembered per (findings, caller) (gateway.live.decisions).
        stage["remembered"] = cpu_us(
            calls, lambda i: gateway.calls._memo.decide(findings[i % n], USER)
        )
        stage["encode"] = cpu_us(calls, lambda i: wire.paint(f"c{i}", 1, decisions[i % n]))

        async def deliver(i: int) -> None:
            await gateway.fanout.publish(USER, f"c{i % 8}", "{}")
            await settle(tab)

        stage["deliver"] = await acpu_us(calls, deliver)

        async def whole_ws(i: int) -> None:
            call_id = f"w{i}"
            frame = orjson.dumps({"type": "call", "call_id": call_id, "phone": phones[i % n]})
            before = NullSocket.sent
            await _handle(gateway, tab, frame.decode(), "ru")  # the /ws receive loop's handler
            await sent_after(before)
            await settle(tab)
            await gateway.calls.end_call(USER, call_id)
            await settle(tab)

        async def whole_api(i: int) -> None:
            call_id = f"a{i}"
            body = orjson.dumps({"user_id": USER, "phone": phones[i % n], "call_id": call_id})
            status = await post(app, "/api/calls", body)
            assert status in (200, 202), status
            await settle(tab)
            await gateway.calls.end_call(USER, call_id)
            await settle(tab)

        whole = {
            "ws": await acpu_us(calls, whole_ws),
            "http": await acpu_us(calls, whole_api),
        }

        # The end_call in each whole run is not part of a call's cost: time it alone.
        async def end_only(i: int) -> None:
            await gateway.calls.start_call(USER, f"e{i}", phones[i % n], source="ws")
            await settle(tab)
            started = time.process_time()
            await gateway.calls.end_call(USER, f"e{i}")
            await settle(tab)
            ends.append(time.process_time() - started)

        ends: list[float] = []
        await acpu_us(min(calls, 2000), end_only)
        end_us = sum(ends) / len(ends) * 1e6
        gateway.tabs.remove(tab)

    bare_tabs: dict[str, Tab] = {}
    from gateway.live.tabs import Tabs

    registry = Tabs(stuck_after=5.0)
    bare_socket = NullSocket()
    bare_tab = registry.open(USER, bare_socket, bare_socket.send_now)
    bare_tabs[USER] = bare_tab
    bare = bare_app(bare_tabs)

    async def bare_call(i: int) -> None:
        body = orjson.dumps({"user_id": USER, "phone": phones[i % n], "call_id": f"b{i}"})
        await post(bare, "/api/calls", body)
        await settle(bare_tab)

    bare_us = await acpu_us(calls, bare_call)

    out.append(
        f"CPU microseconds per call ({calls} calls per figure, python {sys.version.split()[0]})"
    )
    for name, us in stage.items():
        out.append(f"  {name:<10} {us:8.1f}")
    staged = sum(v for k, v in stage.items() if k not in ("intake ws", "decide"))
    out.append(f"  {'sum (ws)':<10} {staged + stage['intake ws']:8.1f}   (stages alone)")
    ws = whole["ws"] - end_us
    http = whole["http"] - end_us
    out.append(f"  whole ws   {ws:8.1f}   (the call only; its end costs {end_us:.1f} more)")
    out.append(f"  glue       {ws - staged - stage['intake ws']:8.1f}   (whole ws - stages)")
    intake = http - ws + stage["intake ws"]
    out.append(f"  whole http {http:8.1f}   -> http intake ~{intake:.1f}")
    out.append(f"  bare http  {bare_us:8.1f}   (JSON in, one frame out)")
    out.append(f"gateway/bare: ws {ws / bare_us:.1f}x, http {http / bare_us:.1f}x")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    print("\n".join(uvloop.run(measure(args.calls))))
    # The ledger records every decided call (issue 12): the same run without it, for the cost.
    print("== the same, with the ledger off (CALLGUARD_LEDGER_DAYS=0)")
    off = uvloop.run(measure(args.calls, 0))
    print("\n".join(line for line in off if line.lstrip().startswith(("whole", "glue"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
