"""The load generator end to end, small: a real gateway process, real tabs, real calls."""

from __future__ import annotations

import argparse
import asyncio
import random
import uuid
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from gateway.tools.loadserver import ServerProcess
from gateway.tools.loadtest import (
    Client,
    Plan,
    add_arguments,
    demo_phones,
    plan_from,
    run,
    run_phase,
)
from tests.redis_server import REDIS_URL, require_redis
from tests.timing import timeout


async def test_a_small_run_paints_every_call_and_reports_the_server() -> None:
    plan = Plan(tabs=20, rate=200.0, seconds=0.2, settle=0.1)
    result = await run(plan, demo_phones())
    assert [p.path for p in result.phases] == ["api", "ws"]
    for phase in result.phases:
        assert phase.sent == 40
        assert phase.lost == 0
        assert phase.percentile(0.5) <= phase.percentile(0.99)
        assert {"stall_ms", "own_stall_ms", "gc_ms", "rss_kb", "cpu_s"} <= set(phase.server)
        # The loop thread is one of the process's threads: never more CPU than all of them.
        assert 0.0 < phase.server["loop_cpu_s"] <= phase.server["cpu_s"]
        assert 0.0 <= phase.server["own_stall_ms"] <= phase.server["stall_ms"]
        assert 0.0 <= phase.server["steal"] <= 1.0  # the host's share of the machine's CPU
    assert result.connect_server["tabs"] == 20
    lines = result.summary()
    assert lines[0].startswith("20 tabs connected")
    assert any(line.startswith("api: 40 calls") for line in lines)
    assert all("of this machine's CPU" in line for line in lines[1:])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tabs", "0"], "--tabs"),
        (["--tabs", "20001"], "--tabs"),
        (["--rate", "0"], "--rate"),
        (["--paths", "api,smoke"], "--paths"),
    ],
)
def test_plans_are_bounded(argv: list[str], message: str) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(ValueError, match=message):
        plan_from(parser.parse_args(argv))


def test_the_default_plan_is_the_issue_s() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    plan = plan_from(parser.parse_args([]))
    assert (plan.tabs, plan.rate, plan.paths, plan.tune_gc, plan.deflate) == (
        5000, 1000.0, ("api", "ws"), True, False,
    )  # fmt: skip


async def test_a_run_can_drive_a_gateway_it_did_not_start() -> None:
    """``--url`` and the target's secret and key: an operator load-tests a real deployment."""
    from tests.live.conftest import API_KEY
    from tests.support import TEST_SECRET, gateway_settings, running_gateway

    async with running_gateway(gateway_settings(api_key=API_KEY)) as url:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = ["--url", url, "--secret", TEST_SECRET, "--api-key", API_KEY, "--tabs", "5"]
        plan = plan_from(parser.parse_args([*args, "--rate", "50", "--seconds", "0.2"]))
        result = await run(replace(plan, settle=0.1), demo_phones())
    assert [(p.path, p.sent, p.lost) for p in result.phases] == [("api", 10, 0), ("ws", 10, 0)]
    assert all(p.server.get("remote") for p in result.phases)


def test_an_outside_gateway_needs_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLGUARD_SECRET", raising=False)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(ValueError, match="needs the gateway's secret"):
        plan_from(parser.parse_args(["--url", "http://127.0.0.1:9"]))
    with pytest.raises(ValueError, match="--url must be"):
        plan_from(parser.parse_args(["--url", "ftp://x", "--secret", "s"]))


@pytest.mark.redis
async def test_tabs_on_a_second_process_get_the_paints_of_calls_entering_the_first() -> None:
    """bench/cross_process.py's setting, small: two gateway processes sharing Redis under a
    prefix of their own, tabs spread over both, calls through the first for tabs on the second."""
    require_redis()
    prefix = f"callguard-test-{uuid.uuid4().hex[:8]}:"
    a, b = (ServerProcess(True, False, 20.0, redis=(REDIS_URL, prefix)) for _ in range(2))
    plan = Plan(tabs=10, rate=100.0, seconds=0.2, paths=("api",))
    await asyncio.gather(a.start(), b.start())
    client = Client(plan, a.base, (a.base, b.base))
    try:
        async with asyncio.timeout(timeout(6)):
            # Ready means subscribed: nothing published from here on can miss the other process.
            assert [(await s.command("stats"))["fanout"]["ok"] for s in (a, b)] == [True, True]
            await client.connect_all()
            assert [(await s.command("stats"))["tabs"] for s in (a, b)] == [5, 5]
            on_b = range(1, plan.tabs, 2)
            sent = await run_phase(client, "api", demo_phones(), random.Random(1), on_b)
    finally:
        await client.close()
        await asyncio.gather(a.stop(), b.stop())
        redis = aioredis.from_url(REDIS_URL)
        keys = [k async for k in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    assert sent == 20
    assert len(client.latencies) == 20  # every paint reached its tab on the second process
