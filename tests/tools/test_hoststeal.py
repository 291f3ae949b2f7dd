"""The host's share of the machine's CPU ("steal"), read from /proc/stat for the load tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gateway.tools.hoststeal import CpuTicks, parse_cpu_line, read_ticks, steal_share

# A real first line of /proc/stat: user nice system idle iowait irq softirq steal guest guest_nice
LINE = "cpu  29982 0 8371 126975 1532 0 2001 4500 17 0\n"


def test_the_cpu_line_gives_the_total_and_the_hosts_part() -> None:
    # Guest time is inside user and nice already: not added to the total again.
    assert parse_cpu_line(LINE) == CpuTicks(29982 + 8371 + 126975 + 1532 + 2001 + 4500, 4500)


def test_a_kernel_without_the_steal_column_gives_no_steal() -> None:
    assert parse_cpu_line("cpu  10 0 5 100 0 0 1\n") == CpuTicks(116, 0)


def test_a_line_that_is_not_the_cpu_line_is_refused() -> None:
    with pytest.raises(ValueError, match="cpu line"):
        parse_cpu_line("cpu0 1 2 3 4 5 6 7 8\n")


def test_the_share_is_of_the_time_between_two_readings() -> None:
    assert steal_share(CpuTicks(1000, 10), CpuTicks(1200, 60)) == 0.25
    assert steal_share(CpuTicks(1000, 10), CpuTicks(1000, 10)) == 0.0  # no time passed


def test_a_missing_or_bad_file_reads_as_zeros(tmp_path: Path) -> None:
    assert read_ticks(tmp_path / "absent") == CpuTicks()
    bad = tmp_path / "stat"
    bad.write_text("intr 1 2 3\n", encoding="ascii")
    assert read_ticks(bad) == CpuTicks()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_this_machine_counts_forward() -> None:
    first = read_ticks()
    busy = sum(i * i for i in range(300_000))  # some CPU time, so the ticks move on
    later = read_ticks()
    assert busy > 0
    assert later.total >= first.total > 0
    assert later.steal >= first.steal
    assert 0.0 <= steal_share(first, later) <= 1.0
