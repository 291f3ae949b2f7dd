"""Cold-path benchmark: our lookup (cold cache) vs a direct port of a synchronous handler.

Runs `callguard fake-portal` in a subprocess with a set latency per request (default 50 ms), then
looks up the demo data's numbers: ours (findbycomm x3 in parallel, then one batch, one keep-alive
session) with the cache invalidated before each call, and a baseline that awaits the same kind of
REST calls one after another with a new connection per call and no cache. Prints p50/p95 of both,
their ratio, REST requests per call, round trips per call, and the warm-cache latency.

    .venv/bin/python bench/cold_path.py [--latency-ms 50] [--calls 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from typing import Any

import aiohttp

from gateway.crm.build import build_directory
from gateway.crm.dataset import load_dataset
from gateway.run.config import Settings
from rules.phones import try_normalize


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def counters(url: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(url + "_fake/counters") as resp:
        return int((await resp.json())["total"])


async def baseline_lookup(base: str, phone: str) -> None:
    """What a line-by-line port of a synchronous handler does: one call after another."""

    async def call(method: str, params: dict[str, Any]) -> Any:
        async with aiohttp.ClientSession() as s, s.post(f"{base}{method}.json", json=params) as r:
            return (await r.json())["result"]

    ids: dict[str, list[int]] = {}
    for kind in ("LEAD", "CONTACT", "COMPANY"):
        found = await call(
            "crm.duplicate.findbycomm", {"type": "PHONE", "values": [phone], "entity_type": kind}
        )
        ids[kind] = found.get(kind, []) if isinstance(found, dict) else []
    users: set[str] = set()
    companies: set[int] = set(ids["COMPANY"])
    for lead in ids["LEAD"]:
        row = await call("crm.lead.get", {"id": lead})
        users.add(row["ASSIGNED_BY_ID"])
        if row.get("COMPANY_ID"):
            companies.add(int(row["COMPANY_ID"]))
    for contact in ids["CONTACT"]:
        row = await call("crm.contact.get", {"id": contact})
        users.add(row["ASSIGNED_BY_ID"])
        for link in await call("crm.contact.company.items.get", {"id": contact}):
            companies.add(int(link["COMPANY_ID"]))
    if companies:
        await call(
            "crm.company.userfield.list", {"filter": {"FIELD_NAME": "UF_CRM_CALLGUARD_STATUS"}}
        )
    for company in sorted(companies):
        users.add((await call("crm.company.get", {"id": company}))["ASSIGNED_BY_ID"])
    for user in sorted(users):
        await call("user.get", {"ID": user})


async def bench(url: str, base: str, latency: float, calls: int) -> None:
    data = load_dataset()
    phones = sorted(
        {
            k
            for sec in (data.leads, data.contacts, data.companies)
            for r in sec.values()
            for p in r.phones
            if (k := try_normalize(p))
        }
    )
    sample = [phones[i % len(phones)] for i in range(calls)]
    settings = Settings(
        secret="b" * 32,
        portal_url=base,
        rate_burst=1_000_000,
        rate_per_second=1e6,
        lookup_deadline=30.0,
    )
    directory = build_directory(settings)
    await directory.lookup(sample[0])  # open the keep-alive connection, learn the status list
    ours: list[float] = []
    before = await counters(url)
    for phone in sample:
        await directory.invalidate_phone(phone)
        start = time.perf_counter()
        await directory.lookup(phone)
        ours.append(time.perf_counter() - start)
    ours_requests = (await counters(url) - before) / calls
    warm: list[float] = []
    for phone in sample * 10:
        start = time.perf_counter()
        await directory.lookup(phone)
        warm.append(time.perf_counter() - start)
    await directory.close()
    base_times: list[float] = []
    before = await counters(url)
    for phone in sample:
        start = time.perf_counter()
        await baseline_lookup(base, phone)
        base_times.append(time.perf_counter() - start)
    base_requests = (await counters(url) - before) / calls

    ms = 1000
    print(
        f"fake portal latency: {latency * ms:.0f} ms per request; {calls} calls over "
        f"{len(set(sample))} demo numbers"
    )
    print(
        f"ours, cold cache:  p50 {statistics.median(ours) * ms:7.1f} ms   "
        f"p95 {percentile(ours, 0.95) * ms:7.1f} ms   {ours_requests:.1f} REST requests/call   "
        f"{statistics.median(ours) / latency:.2f} round trips (p50 / latency)"
    )
    print(
        f"baseline:          p50 {statistics.median(base_times) * ms:7.1f} ms   "
        f"p95 {percentile(base_times, 0.95) * ms:7.1f} ms   {base_requests:.1f} REST requests/call"
    )
    print(
        f"ratio baseline/ours: p50 {statistics.median(base_times) / statistics.median(ours):.1f}x   "
        f"p95 {percentile(base_times, 0.95) / percentile(ours, 0.95):.1f}x"
    )
    print(
        f"ours, warm cache:  p50 {statistics.median(warm) * ms:7.3f} ms   "
        f"p95 {percentile(warm, 0.95) * ms:7.3f} ms   (0 REST requests)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "fake-portal",
            "--port",
            "0",
            "--latency",
            str(args.latency_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        base = proc.stdout.readline().strip().removeprefix("CALLGUARD_PORTAL_URL=")
        asyncio.run(bench(url, base, args.latency_ms / 1000, args.calls))
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
