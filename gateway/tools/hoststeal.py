"""How much of this machine's CPU time the host took away: "steal" in ``/proc/stat``.

On a virtual machine the hypervisor may run another guest on our virtual CPUs. Nothing inside
sees those moments: a thread without its CPU looks stalled to itself, the lag probe's "own" part
included (gateway/run/probes.py). On 2026-12-03 load tests on this kind of machine failed at
rates they had passed an hour before, with the host taking up to 44% of the CPU in the failed
steps (docs/performance.md). So a load test says how much it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STAT = Path("/proc/stat")
STEAL = 7  # the 8th number of the "cpu" line: user nice system idle iowait irq softirq steal


@dataclass(frozen=True, slots=True)
class CpuTicks:
    """The machine's CPU time so far, all of it and the host's part, in clock ticks."""

    total: int = 0
    steal: int = 0


def parse_cpu_line(line: str) -> CpuTicks:
    """The first ("cpu") line of ``/proc/stat``. Guest time is already inside user and nice, so
    only the first eight numbers make the total; a kernel without the steal column gives 0."""
    name, *values = line.split()
    if name != "cpu":
        raise ValueError(f"not the cpu line of /proc/stat: {line[:40]!r}")
    ticks = [int(v) for v in values[: STEAL + 1]]
    return CpuTicks(sum(ticks), ticks[STEAL] if len(ticks) > STEAL else 0)


def read_ticks(path: Path = STAT) -> CpuTicks:
    """Now's ticks; zeros where the file is missing or unreadable (not Linux)."""
    try:
        with path.open(encoding="ascii") as stat:
            return parse_cpu_line(stat.readline())
    except (OSError, ValueError):
        return CpuTicks()


def steal_share(before: CpuTicks, after: CpuTicks) -> float:
    """The host's share of the machine's CPU time between two readings (0 when none passed)."""
    total = after.total - before.total
    return (after.steal - before.steal) / total if total > 0 else 0.0
