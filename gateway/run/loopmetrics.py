"""Counters and histograms that every call updates, kept as plain numbers for the event loop.

prometheus_client's ``Counter.inc`` and ``Histogram.observe`` take a lock per value (a histogram
two) so that any thread may update them: ~0.25 and ~0.5 us, six updates a call, about a sixth of
a warm call's CPU (bench/call_cost.py). The metrics here are updated only on the event loop's
thread, so an update is a plain ``+=`` (a histogram's bucket found by bisection); a scrape reads
them through the registry like any other collector and sees the same names, labels and buckets.

Not for anything a thread other than the loop's may update (GC callbacks run in whichever thread
collects: gateway/run/probes.py keeps prometheus_client's metrics).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from itertools import accumulate

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString


class LoopCounter:
    """A counter with at most one label; ``labels(value)`` once, then ``inc()`` on the child."""

    def __init__(
        self, name: str, documentation: str, label: str | None, registry: CollectorRegistry
    ) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self._children: dict[str, Count] = {}
        if label is None:  # read as 0 from the start, as prometheus_client's
            self.labels("")
        registry.register(self)

    def labels(self, value: str) -> Count:
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = Count()
        return child

    def inc(self, amount: float = 1.0) -> None:
        """For a counter without a label."""
        self.labels("").inc(amount)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            self.name, self.documentation, labels=[self.label] if self.label else []
        )
        for value, child in self._children.items():
            family.add_metric([value] if self.label else [], child.value)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.documentation)


class Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LoopHistogram:
    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = tuple(buckets)
        self._counts = [0] * (len(self.bounds) + 1)  # the last: above every bound (+Inf)
        self._sum = 0.0
        registry.register(self)

    def observe(self, amount: float) -> None:
        # Bucket i counts values <= bounds[i] (Prometheus's "le"): the first bound >= amount.
        self._counts[bisect_left(self.bounds, amount)] += 1
        self._sum += amount

    def collect(self) -> Iterator[Metric]:
        # The bounds written as prometheus_client writes its own histograms' (0.005, 1.0).
        les = [floatToGoString(b) for b in self.bounds]  # type: ignore[no-untyped-call]
        bounds = [*les, "+Inf"]
        cumulative = list(accumulate(self._counts))
        yield HistogramMetricFamily(
            self.name,
            self.documentation,
            buckets=list(zip(bounds, cumulative, strict=True)),
            sum_value=self._sum,
        )

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation)
