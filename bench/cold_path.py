"""Cold-path benchmark: our lookup against the best plain alternative, under a cloud portal's limit.

Runs `callguard fake-portal` in a subprocess over a generated data file (companies, each with a
linked contact; every number found in the CRM), charging ``--latency-ms`` per HTTP request plus
``--command-ms`` of server time per method run (each sub-request of a batch). Both sides use
the same client (one keep-alive session, the same rate-limit settings) and differ only in the
lookup:

- **ours**: findbycomm x3 in one batch, then one batch of details with ``$result`` references
  (2 requests per number found, 1 for no match);
- **baseline**: a straightforward batch-using client: findbycomm x3 in one batch, the rows and
  each contact's companies in a second, the linked companies and the managers in a third.

Prints requests per number, p50/p95 of a cold lookup (no rate limit), and sustained new numbers
per second with the portal's 2/s drain: new numbers offered at 2/s for ``--seconds`` after the
burst is spent, each with the gateway's 1.5 s deadline (goal >= 0.9/s).

    .venv/bin/python bench/cold_path.py [--latency-ms 50] [--command-ms 5] [--calls 30] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from gateway.crm.budget import LANE, Lane
from gateway.crm.client import BitrixClient, BitrixError, Limits
from gateway.crm.forms import encode_form
from gateway.crm.rest import BitrixDirectory
from rules.phones import normalize

Lookup = Callable[[str, float], Awaitable[object]]
DEADLINE = 1.5  # CALLGUARD_LOOKUP_DEADLINE's default


def data_file(count: int) -> str:
    doc: dict[str, list[dict[str, Any]]] = {
        "users": [{"id": i, "name": f"Менеджер {i}"} for i in range(1, 6)],
        "departments": [],
        "companies": [],
        "contacts": [],
        "leads": [],
    }
    for i in range(count):
        doc["companies"].append(
            {
                "id": 100 + i,
                "title": f"Фирма {i}",
                "assigned_by": 1 + i % 5,
                "status": "IN_WORK",
                "phones": [f"+7 901 {i:07d}"],
                "contacts": [5000 + i],
            }
        )
        doc["contacts"].append(
            {
                "id": 5000 + i,
                "name": f"Контакт {i}",
                "assigned_by": 1 + (i + 1) % 5,
                "phones": [f"+7 902 {i:07d}"],
                "companies": [100 + i],
            }
        )
    fd, path = tempfile.mkstemp(suffix=".json", prefix="cold-path-")
    os.close(fd)
    Path(path).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def numbers(start: int, count: int) -> list[str]:
    # Alternate a contact's number (reaches its company by link) and a company's own.
    return [normalize(f"+7 90{1 + i % 2} {i:07d}") for i in range(start, start + count)]


class Baseline:
    """A straightforward batch-using client: three batches, no references."""

    def __init__(self, client: BitrixClient) -> None:
        self.client = client

    async def lookup(self, phone: str, deadline: float) -> object:
        # The same client features as ours: one budget lane per lookup (finish what has begun).
        token = LANE.set(lane := Lane(expect=3))
        try:
            return await self._lookup(phone, deadline, lane)
        finally:
            LANE.reset(token)

    async def _lookup(self, phone: str, deadline: float, lane: Lane) -> object:
        find = {
            k: "crm.duplicate.findbycomm?"
            + encode_form({"type": "PHONE", "values": [phone], "entity_type": k})
            for k in ("LEAD", "CONTACT", "COMPANY")
        }
        found = (await self.client.batch(find, deadline=deadline)).results
        lane.expect = 2
        ids = {k: v.get(k, []) if isinstance(v, dict) else [] for k, v in found.items()}
        if not any(ids.values()):
            return None
        rows: dict[str, str] = {}
        for kind, key in (("lead", "LEAD"), ("contact", "CONTACT"), ("company", "COMPANY")):
            for i in ids[key]:
                rows[f"{kind}{i}"] = f"crm.{kind}.get?id={i}"
        for i in ids["CONTACT"]:
            rows[f"cc{i}"] = f"crm.contact.company.items.get?id={i}"
        rows["E"] = "crm.company.userfield.list?" + encode_form(
            {"filter": {"FIELD_NAME": "UF_CRM_CALLGUARD_STATUS"}}
        )
        got = (await self.client.batch(rows, deadline=deadline)).results
        lane.expect = 1
        companies = {str(x["COMPANY_ID"]) for k, v in got.items() if k.startswith("cc") for x in v}
        users = {
            str(v["ASSIGNED_BY_ID"])
            for k, v in got.items()
            if isinstance(v, dict) and "ASSIGNED_BY_ID" in v
        }
        third = {f"co{c}": f"crm.company.get?id={c}" for c in sorted(companies)}
        third |= {f"u{u}": f"user.get?ID={u}" for u in sorted(users)}
        return (await self.client.batch(third, deadline=deadline)).results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def counters(url: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(url + "_fake/counters") as resp:
        return int((await resp.json())["total"])


async def control(url: str, path: str, doc: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as s, s.post(url + path, json=doc) as resp:
        resp.raise_for_status()


def make(base: str, limits: Limits) -> tuple[BitrixClient, Lookup, Lookup]:
    client = BitrixClient(base, limits)
    ours = BitrixDirectory(client, deadline=DEADLINE)
    baseline = Baseline(client)
    return client, lambda p, d: ours.lookup(p), baseline.lookup


async def latency_run(url: str, lookup: Lookup, phones: list[str]) -> tuple[list[float], float]:
    times: list[float] = []
    before = await counters(url)
    for phone in phones:
        start = time.perf_counter()
        await lookup(phone, time.monotonic() + 30)
        times.append(time.perf_counter() - start)
    return times, (await counters(url) - before) / len(phones)


async def sustained(
    client: BitrixClient, lookup: Lookup, phones: list[str], seconds: float
) -> float:
    """New numbers offered at 2/s, the budget's burst spent: how many a second are coloured."""
    await client.budget.fill()
    ok = 0

    async def one(phone: str) -> None:
        nonlocal ok
        try:
            await asyncio.wait_for(lookup(phone, time.monotonic() + DEADLINE), DEADLINE)
            ok += 1
        except (BitrixError, TimeoutError):
            pass  # failed open: painted "none"

    tasks = []
    started = time.monotonic()
    for i, phone in enumerate(phones[: int(seconds * 2)]):
        await asyncio.sleep(max(0.0, started + i / 2 - time.monotonic()))
        tasks.append(asyncio.ensure_future(one(phone)))
    await asyncio.gather(*tasks)
    return ok / seconds


async def bench(url: str, base: str, args: argparse.Namespace) -> None:
    await control(url, "_fake/latency", {"ms": args.latency_ms, "per_command_ms": args.command_ms})
    open_limits = Limits(rate_burst=1_000_000, rate_per_second=1e6)
    client, ours, baseline = make(base, open_limits)
    await ours(numbers(0, 1)[0], time.monotonic() + 30)  # the session, the status list
    o_times, o_req = await latency_run(url, ours, numbers(1, args.calls))
    b_times, b_req = await latency_run(url, baseline, numbers(100, args.calls))
    none_times, none_req = await latency_run(url, ours, [normalize("+7 999 000 00 00")] * 3)
    await client.close()
    cloud = Limits(rate_burst=50, rate_per_second=2.0)
    client, ours, baseline = make(base, cloud)
    await ours(numbers(0, 1)[0], time.monotonic() + 30)
    o_rate = await sustained(client, ours, numbers(200, 200), args.seconds)
    await client.close()
    client, ours, baseline = make(base, cloud)
    b_rate = await sustained(client, baseline, numbers(400, 200), args.seconds)
    await client.close()

    ms = 1000
    p50 = statistics.median
    print(
        f"fake portal: {args.latency_ms:.0f} ms per HTTP request + {args.command_ms:.0f} ms per "
        f"method run; {args.calls} cold numbers each (every one found, linked company included)"
    )
    print(
        f"ours:      {o_req:.2f} requests/number ({none_req:.0f} for no match)  "
        f"p50 {p50(o_times) * ms:6.1f} ms  p95 {percentile(o_times, 0.95) * ms:6.1f} ms  "
        f"sustained {o_rate:.2f} new numbers/s at 2 requests/s"
    )
    print(
        f"baseline:  {b_req:.2f} requests/number             "
        f"p50 {p50(b_times) * ms:6.1f} ms  p95 {percentile(b_times, 0.95) * ms:6.1f} ms  "
        f"sustained {b_rate:.2f} new numbers/s at 2 requests/s"
    )
    print(
        f"ratio baseline/ours: requests {b_req / o_req:.2f}x  p50 {p50(b_times) / p50(o_times):.2f}x  "
        f"p95 {percentile(b_times, 0.95) / percentile(o_times, 0.95):.2f}x  "
        f"sustained ours/baseline {o_rate / b_rate if b_rate else float('inf'):.2f}x  (goal: ours >= 0.9/s)"
    )
    print(f"no match:  p50 {p50(none_times) * ms:6.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--command-ms", type=float, default=5.0)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    data = data_file(600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "fake-portal", "--port", "0", "--data", data],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        base = proc.stdout.readline().strip().removeprefix("CALLGUARD_PORTAL_URL=")
        asyncio.run(bench(url, base, args))
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        Path(data).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
