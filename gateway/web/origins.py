"""Which web pages may talk to the gateway: the ``/ws`` Origin check and ``/static`` CORS.

Allowed: every origin in ``CALLGUARD_ALLOWED_ORIGINS`` (default: the portal's origin from
``CALLGUARD_PORTAL_URL`` plus ``CALLGUARD_PUBLIC_URL``'s), and always the gateway's own origin:
a page whose Origin names the host the request was addressed to (its ``Host`` header, or the
socket it arrived on), such as the demo page. A request without an Origin is not from a browser
page (browsers always send one on a websocket handshake; the load tester and curl send none), so
it is allowed: the token, not the Origin, is what authenticates a tab.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import Scope

log = logging.getLogger("callguard.origins")

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# Refused origins already logged: one line per origin, not one per handshake.
MAX_REMEMBERED = 256


def origin_of(url: str) -> str:
    """``https://Portal.example:443/rest/1/x/`` -> ``https://portal.example``."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is None or port == DEFAULT_PORTS.get(parts.scheme):
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def default_origins(portal_url: str | None, public_url: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(origin_of(u) for u in (portal_url, public_url) if u))


class Origins:
    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(origin_of(o) for o in allowed)
        self._logged: set[str] = set()

    def allows(self, scope: Scope) -> bool:
        """May the page that sent this request (HTTP or websocket) use the gateway?"""
        origin = header(scope, b"origin")
        if origin is None:
            return True
        if origin == "null":  # sandboxed frames, file:// pages: nobody's own origin
            return False
        normal = origin_of(origin)
        return normal in self.allowed or _same_origin(normal, scope)

    def refused(self, scope: Scope) -> str:
        """The refused Origin, logged once per origin."""
        origin = header(scope, b"origin") or ""
        if origin not in self._logged and len(self._logged) < MAX_REMEMBERED:
            self._logged.add(origin)
            log.warning(
                "refused a request from the page origin %r on %s: add it to "
                "CALLGUARD_ALLOWED_ORIGINS if it is yours",
                origin[:200],
                scope.get("path", "?"),
            )
        return origin


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _same_origin(origin: str, scope: Scope) -> bool:
    """The Origin's host and port are the ones this request was sent to (the scheme may differ
    behind a TLS-terminating proxy)."""
    scheme, _, netloc = origin.partition("://")
    port = DEFAULT_PORTS.get(scheme)
    host = header(scope, b"host")
    if host is not None and _netloc(host.lower(), port) == netloc:
        return True
    server = scope.get("server")
    if server and server[1] is not None:
        return _netloc(f"{server[0]}:{server[1]}", port) == netloc
    return False


def _netloc(host: str, default_port: int | None) -> str:
    if default_port is not None and host.endswith(f":{default_port}"):
        return host[: -len(f":{default_port}")]
    return host
