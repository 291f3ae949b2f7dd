"""Data-file directory benchmark (issue 10 item 5): time to index N and 4N records, and a
status change, against the old way (every phone re-parsed for every key) at a size it survives.

    .venv/bin/python bench/datafile_index.py [--records 10000]

Linear growth means the 4N build takes about 4x the N build. Each record here is a company with
one number, a contact linked to it and a lead of it (3 records, 3 numbers). A machine busy with
other work shows its own noise: the ratio matters more than the seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.crm.datafile import findings_for
from gateway.crm.phoneindex import PhoneIndex
from rules.phones import try_normalize
from tests.crm.test_phoneindex import big_data


def build(n: int) -> tuple[float, float]:
    data = big_data(n // 3)
    started = time.perf_counter()
    index = PhoneIndex(data, "RU")
    built = time.perf_counter() - started
    data.companies["10"].status = "DECLINED"
    started = time.perf_counter()
    index.update("company", "10")
    index.find("+79010000000")
    return built, time.perf_counter() - started


def old_way(n: int) -> float:
    """What reindex() did: findings_for (a scan of every record) for every key."""
    data = big_data(n // 3)
    started = time.perf_counter()
    keys = {
        k
        for section in (data.leads, data.contacts, data.companies)
        for rec in section.values()
        for p in rec.phones
        if (k := try_normalize(p))
    }
    for key in keys:
        findings_for(data, key)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    n = parser.parse_args().records
    small, small_change = build(n)
    large, large_change = build(4 * n)
    print(
        f"index build, {n} records:      {small:7.2f} s   a status change: {small_change * 1e3:6.1f} ms"
    )
    print(
        f"index build, {4 * n} records:     {large:7.2f} s   a status change: {large_change * 1e3:6.1f} ms"
    )
    print(f"growth at 4x the records:    {large / small:7.1f}x  (linear: 4x)")
    for size in (100, 200):
        print(f"old reindex, {size} records:      {old_way(size):7.2f} s  (quadratic)")


if __name__ == "__main__":
    main()
