"""Prometheus metrics of one gateway app, in a registry of its own (tests build many apps).

Names start with ``callguard_``; latencies are in seconds. Gauges of the live state (tabs, users,
calls) read the registry when scraped instead of being kept in step by hand.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gateway.crm import metrics as directory_metrics
from gateway.run.loopmetrics import LoopCounter, LoopHistogram

# Paint-path latencies live in the low milliseconds; the tail buckets catch CRM deadlines.
FAST_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STALL_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tabs = Gauge("callguard_tabs", "Open websocket tabs", registry=r)
        self.users = Gauge("callguard_users", "Users with at least one open tab", registry=r)
        self.active_calls = Gauge("callguard_active_calls", "Calls not yet ended", registry=r)
        # Issue 14: calls refused rather than queued; reason "busy": no place in flight left for
        # the caller's user (scope "user", CALLGUARD_USER_INFLIGHT) or in all ("all", MAX_).
        self.calls_refused = Counter(
            "callguard_calls_refused",
            "Call events refused at once, by reason, scope and source",
            ["reason", "scope", "source"],
            registry=r,
        )
        self.calls_in_flight = Gauge(
            "callguard_calls_in_flight", "Calls being looked up and painted", registry=r
        )
        self.calls_in_flight_peak = Gauge(
            "callguard_calls_in_flight_peak",
            "The most calls in flight since start: in all, and for any one user",
            ["scope"],
            registry=r,
        )
        # Updated by every call, on the event loop only: plain numbers (gateway/run/loopmetrics.py).
        self.calls = LoopCounter("callguard_calls", "Call events received", "source", r)
        self.decisions = LoopCounter("callguard_decisions", "Colour decisions painted", "colour", r)
        self.lookups = LoopCounter(
            "callguard_lookups", "Directory lookups by outcome", "outcome", r
        )
        self.lookup_seconds = LoopHistogram(
            "callguard_lookup_seconds", "Directory lookup time", FAST_BUCKETS, r
        )
        self.call_to_paint = LoopHistogram(
            "callguard_call_to_paint_seconds",
            "From a call event's arrival to its paint being queued on the tabs",
            FAST_BUCKETS,
            r,
        )
        self.ring_to_applied = LoopHistogram(
            "callguard_ring_to_applied_seconds",
            "From the ring seen in the page to the colour on screen (the snippet's applied)",
            FAST_BUCKETS,
            r,
        )
        self.frames_rejected = Counter(
            "callguard_frames_rejected", "Client frames answered with error", ["code"], registry=r
        )
        self.tab_closes = Counter(
            "callguard_tab_closes",
            "Tabs closed by the gateway, by close code (4401: token refused)",
            ["code"],
            registry=r,
        )
        self.tab_disconnects = Counter(
            "callguard_tab_disconnects",
            "Tabs closed by the browser or the network, by close code",
            ["code"],
            registry=r,
        )
        self.token_renewals = Counter(
            "callguard_token_renewals", "Renewed tokens sent to open tabs", registry=r
        )
        self.origins_refused = Counter(
            "callguard_origins_refused",
            "Requests from a page origin that is not allowed (ws: 403, static: no CORS)",
            ["path"],
            registry=r,
        )
        # Connection limits (gateway/run/connections.py, docs/operations.md "Limits").
        self.connections = Gauge(
            "callguard_connections", "Open connections: HTTP and websocket", registry=r
        )
        self.connections_refused = Counter(
            "callguard_connections_refused",
            "Connections and tabs refused or closed for crossing a limit, by reason",
            ["reason"],
            registry=r,
        )
        self.connections_idle_closed = Counter(
            "callguard_connections_idle_closed",
            "Keep-alive connections closed after CALLGUARD_KEEP_ALIVE seconds without a request",
            registry=r,
        )
        self.loop_stall = Histogram(
            "callguard_loop_stall_seconds",
            "How late the event loop ran a probe that asked to wake up on time",
            buckets=STALL_BUCKETS,
            registry=r,
        )
        self.loop_stall_max = Gauge(
            "callguard_loop_stall_max_seconds", "Worst event loop stall since start", registry=r
        )
        self.gc_pause = Histogram(
            "callguard_gc_pause_seconds",
            "Garbage collection pauses",
            ["generation"],
            buckets=STALL_BUCKETS,
            registry=r,
        )
        self.gc_pause_max = Gauge(
            "callguard_gc_pause_max_seconds",
            "Longest garbage collection pause since start",
            registry=r,
        )
        # The GC policy's frozen set (gateway/run/gcpolicy.py), counted once, at start-up, before
        # any tab: gc.get_freeze_count() walks every frozen object with the GIL held, and a
        # scrape that read it live stopped the loop for 355 ms at 19,500 tabs.
        self.gc_frozen = Gauge(
            "callguard_gc_frozen_objects",
            "Objects the GC policy froze at start-up (not read again: counting stops the loop)",
            registry=r,
        )

    def watch(
        self, tabs: Callable[[], int], users: Callable[[], int], calls: Callable[[], int]
    ) -> None:
        self.tabs.set_function(tabs)
        self.users.set_function(users)
        self.active_calls.set_function(calls)

    def watch_inflight(
        self, count: Callable[[], int], peak: Callable[[], int], user_peak: Callable[[], int]
    ) -> None:
        self.calls_in_flight.set_function(count)
        self.calls_in_flight_peak.labels("all").set_function(peak)
        self.calls_in_flight_peak.labels("user").set_function(user_peak)

    def render(self) -> bytes:
        # The directory's metrics (cache, REST requests and errors) live in their own registry,
        # shared by every gateway in the process; one scrape shows both.
        return generate_latest(self.registry) + generate_latest(directory_metrics.REGISTRY)
