"""Directory metrics: cache outcomes and Bitrix24 REST traffic.

Module-level, in a registry of their own: a directory outlives any one app instance, and tests
build many apps in one process (registering these per app would collide). ``/metrics`` appends
``generate_latest(REGISTRY)`` to the app's own registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from gateway.run.loopmetrics import LoopCounter

REGISTRY = CollectorRegistry(auto_describe=True)

# Every warm call counts a hit, on the event loop's thread only: a plain number, not
# prometheus_client's counter and its lock (gateway/run/loopmetrics.py).
cache_hits = LoopCounter(
    "callguard_directory_cache_hits", "Lookups answered from the cache", None, REGISTRY
)
cache_misses = Counter(
    "callguard_directory_cache_misses", "Lookups that went to the source", registry=REGISTRY
)
coalesced = Counter(
    "callguard_directory_coalesced",
    "Lookups that waited for the same number's lookup already in flight",
    registry=REGISTRY,
)
rest_requests = Counter(
    "callguard_portal_requests", "Bitrix24 REST requests sent", ["method"], registry=REGISTRY
)
rest_errors = Counter(
    "callguard_portal_errors",
    "Bitrix24 REST failures by error code (transport failures as TRANSPORT, TIMEOUT, ...)",
    ["code"],
    registry=REGISTRY,
)
budget_waits = Counter(
    "callguard_portal_budget_waits",
    "Portal requests that waited for a place in the portal's request budget, by lane",
    ["lane"],
    registry=REGISTRY,
)
budget_refusals = Counter(
    "callguard_portal_budget_refusals",
    "Portal requests not sent: the budget could not let them through before their deadline "
    "(lane live/background, or user: over one user's fair share)",
    ["lane"],
    registry=REGISTRY,
)
