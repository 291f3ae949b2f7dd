"""One unit for every test timeout, so a slow CI machine can scale them all at once.

``CALLGUARD_TEST_TIME_UNIT=3`` makes every timeout three times longer. Timeouts only catch hangs;
no test asserts on how fast something was (benchmarks in bench/ do that).
"""

import os

UNIT = float(os.environ.get("CALLGUARD_TEST_TIME_UNIT", "1"))


def timeout(units: float = 1.0) -> float:
    """Seconds to wait before calling something hung: ``units`` x 5 s x the CI scale."""
    return units * 5.0 * UNIT
