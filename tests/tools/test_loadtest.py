"""The load generator end to end, small: a real gateway process, real tabs, real calls."""

from __future__ import annotations

import argparse
from dataclasses import replace

import pytest

from gateway.tools.loadtest import Plan, add_arguments, demo_phones, plan_from, run


async def test_a_small_run_paints_every_call_and_reports_the_server() -> None:
    plan = Plan(tabs=20, rate=200.0, seconds=0.2, settle=0.1)
    result = await run(plan, demo_phones())
    assert [p.path for p in result.phases] == ["api", "ws"]
    for phase in result.phases:
        assert phase.sent == 40
        assert phase.lost == 0
        assert phase.percentile(0.5) <= phase.percentile(0.99)
        assert {"stall_ms", "gc_ms", "rss_kb", "collections"} <= set(phase.server)
    assert result.connect_server["tabs"] == 20
    lines = result.summary()
    assert lines[0].startswith("20 tabs connected")
    assert any(line.startswith("api: 40 calls") for line in lines)


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
