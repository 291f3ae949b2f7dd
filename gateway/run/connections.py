"""Connection limits: what every connection of one server shares (docs/operations.md "Limits").

uvicorn's own knobs do not do the job: ``limit_concurrency`` is checked only once a request's
headers are complete (an idle or half-sent connection holds its descriptor for ever) and never
for a websocket upgrade; there is no timeout for a request's head at all, and httptools (llhttp)
bounds neither the URL nor the headers. ``timeout_keep_alive`` is used as it is
(``CALLGUARD_KEEP_ALIVE``). The protocols in :mod:`gateway.run.protocols` enforce the rest with
the :class:`Guard` they reach through :class:`GatewayConfig`.

The cap on open connections (``CALLGUARD_MAX_CONNECTIONS``) defaults to the open-files limit
less :data:`FD_RESERVE` descriptors for the database, Redis, the portal and the logs: past the
limit ``accept()`` fails and nothing is logged. :data:`RESERVED` more connections from loopback
may ask for ``GET /healthz`` or ``/metrics`` (nothing else) when the cap is reached, so the
box's own health check still answers during a flood.
"""

from __future__ import annotations

import ipaddress
import resource
from dataclasses import dataclass
from enum import Enum
from typing import Any

import uvicorn

from gateway.run.config import ConfigError, Settings
from gateway.run.refusals import Refusals
from gateway.run.turns import Openings

FD_RESERVE = 256  # descriptors kept from connections: database pool, Redis, portal, logs
RESERVED = 8  # connections from loopback past the cap, for the health check and metrics
RESERVED_PATHS = frozenset({b"/healthz", b"/metrics"})
HEAD_SLACK = 1024  # the request line's method and version, the head's line ends
# What a transport holds before it pauses the app's sends (asyncio's and uvloop's high-water
# mark): a reading tab's paints may sit there, so the unread bound starts above it.
TRANSPORT_HIGH_WATER = 64 * 1024


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    header_timeout: float = 10.0  # CALLGUARD_HEADER_TIMEOUT
    max_url: int = 8000  # CALLGUARD_MAX_URL
    max_headers: int = 16 * 1024  # CALLGUARD_MAX_HEADERS
    # A websocket's unread output: CALLGUARD_TAB_QUEUE_BYTES above the transport's high water.
    unread_bytes: int = 256 * 1024 + TRANSPORT_HIGH_WATER
    reserved: int = RESERVED
    ping_rate: float = 1.0  # CALLGUARD_TAB_PING_RATE: pings a second a websocket peer may send

    @property
    def head_bytes(self) -> int:
        """Bytes a request's head may take before it is refused, whether or not it ends: what
        httptools buffers of a header it has not seen the end of."""
        return self.max_url + self.max_headers + HEAD_SLACK

    @classmethod
    def from_settings(cls, settings: Settings, open_files: int | None = None) -> ConnectionLimits:
        """Raises :class:`ConfigError` when ``CALLGUARD_MAX_CONNECTIONS`` (with the reserve)
        does not fit in the open-files limit (``ulimit -n``)."""
        if open_files is None:
            open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        room = open_files - FD_RESERVE - RESERVED
        cap = settings.max_connections
        if cap is None:
            cap = max(1, room)
        elif cap > room:
            raise ConfigError(
                f"CALLGUARD_MAX_CONNECTIONS: {cap} does not fit in the open-files limit "
                f"({open_files}, less {FD_RESERVE + RESERVED} kept for the database, Redis, logs "
                f"and health checks): set at most {max(1, room)}, or raise the limit (ulimit -n, "
                "LimitNOFILE= in the systemd unit)"
            )
        return cls(
            max_connections=cap,
            header_timeout=settings.header_timeout,
            max_url=settings.max_url,
            max_headers=settings.max_headers,
            unread_bytes=settings.tab_queue_bytes + TRANSPORT_HIGH_WATER,
            ping_rate=settings.tab_ping_rate,
        )


class Admission(Enum):
    OPEN = "open"
    RESERVED = "reserved"  # past the cap, from loopback: /healthz and /metrics only
    REFUSED = "refused"


class Guard:
    """The limits, the server's open connections (uvicorn's ``server_state.connections``, which
    the protocols hand over) and the refusals of one server."""

    def __init__(self, limits: ConnectionLimits, refusals: Refusals) -> None:
        self.limits = limits
        self.refusals = refusals
        self.connections: set[Any] = set()
        self.openings = Openings()
        refusals.metrics.connections.set_function(lambda: len(self.connections))

    def admit(self, peer: str | None) -> Admission:
        """Whether a new connection from ``peer`` (an IP address) may stay open."""
        open_now = len(self.connections)
        limits = self.limits
        if open_now < limits.max_connections:
            return Admission.OPEN
        if open_now < limits.max_connections + limits.reserved and is_loopback(peer):
            return Admission.RESERVED
        return Admission.REFUSED

    def refuse(self, reason: str, peer: str | None) -> None:
        self.refusals.refuse(reason, peer)


def is_loopback(peer: str | None) -> bool:
    if peer is None:
        return False
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:  # a Unix socket's path
        return False


class GatewayConfig(uvicorn.Config):
    """uvicorn's configuration, carrying the :class:`Guard` the protocols share."""

    guard: Guard
