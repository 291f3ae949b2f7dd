"""The loop's plain-number metrics read exactly as prometheus_client's own would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gateway.run.loopmetrics import LoopCounter, LoopHistogram
from gateway.run.metrics import FAST_BUCKETS

# On a bound, between bounds, below the first, above the last.
VALUES = (0.0, 0.0005, 0.0007, 0.001, 0.3, 5.0, 7.5)


def exposition(registry: CollectorRegistry) -> list[str]:
    """The scrape, without the creation times only prometheus_client's own metrics carry."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def test_a_histogram_reads_as_prometheus_clients() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("x_seconds", "Some time", buckets=FAST_BUCKETS, registry=theirs)
    histogram = LoopHistogram("x_seconds", "Some time", FAST_BUCKETS, ours)
    assert exposition(ours) == exposition(theirs)  # nothing observed yet
    for value in VALUES:
        reference.observe(value)
        histogram.observe(value)
    assert exposition(ours) == exposition(theirs)
    assert 'x_seconds_bucket{le="0.001"} 4.0' in exposition(ours)
    assert "x_seconds_count 7.0" in exposition(ours)


def test_a_counter_reads_as_prometheus_clients_with_and_without_a_label() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    by_source = Counter("calls", "Calls", ["source"], registry=theirs)
    plain = Counter("hits", "Hits", registry=theirs)
    loop_by_source = LoopCounter("calls", "Calls", "source", ours)
    loop_plain = LoopCounter("hits", "Hits", None, ours)
    assert exposition(ours) == exposition(theirs)  # nothing counted yet
    for source in ("ws", "api", "ws"):
        by_source.labels(source).inc()
        loop_by_source.labels(source).inc()
    by_source.labels("portal")  # bound, never counted: reads 0
    loop_by_source.labels("portal")
    plain.inc(2)
    loop_plain.inc(2)
    assert exposition(ours) == exposition(theirs)
    assert 'calls_total{source="ws"} 2.0' in exposition(ours)
