"""Plain HTTP endpoints: ``GET /healthz``, ``GET /metrics``, ``POST /bitrix/events`` and the
snippet's static files (design.md §3.5; ``POST /api/calls`` is gateway/web/callapi.py). Error
bodies are JSON ``{"error": code, "message": text}``.
"""

from __future__ import annotations

import hmac
import os
from ipaddress import ip_address

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from gateway.portal.intake import EventIntake
from gateway.run.runtime import Gateway
from gateway.web.origins import Origins, header
from gateway.web.responses import json_response


def bearer_matches(authorization: str, key: str | None) -> bool:
    """An ``Authorization`` header's value is ``Bearer <key>`` (and there is a key)."""
    if not key:
        return False
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def _from_loopback(request: Request) -> bool:
    """The peer is this machine. Behind a proxy on the box, uvicorn's proxy headers put the
    real client here (nginx must send X-Forwarded-For: docs/install-box.md does)."""
    try:
        return request.client is not None and ip_address(request.client.host).is_loopback
    except ValueError:
        return False


async def healthz(request: Request) -> Response:
    """``{"ok": bool}`` (200/503) for anyone; the detail only with the API key or from loopback:
    paths, the portal's host and tab counts are nobody else's business."""
    gateway: Gateway = request.app.state.gateway
    try:
        directory = gateway.directory.health()
    except Exception as err:  # a health hook that fails is itself the answer
        directory = {"ok": False, "source": "unknown", "reason": f"health check failed: {err}"}
    ok = bool(directory.get("ok"))
    status = 200 if ok else 503
    authorization = request.headers.get("authorization", "")
    if not (bearer_matches(authorization, gateway.settings.api_key) or _from_loopback(request)):
        return json_response({"ok": ok}, status)
    body = {
        "ok": ok,
        "version": gateway.version,
        "directory": directory,
        "tabs": gateway.tabs.count,
        "users": gateway.tabs.users,
        "active_calls": gateway.calls.active,
        "calls_in_flight": gateway.calls.inflight.count,
        # Redis down degrades (other processes' tabs miss paints) but this process still serves.
        "fanout": gateway.shared.health() if gateway.shared is not None else {"mode": "local"},
        # Likewise: a failing database stops status judgements, never a call.
        "database": gateway.database.health(),
    }
    return json_response(body, status)


async def metrics(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    return Response(gateway.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


class SnippetFiles(StaticFiles):
    """Static files for portal pages: revalidated on every load (a new snippet version reaches
    managers at their next page load), CORS only for allowed origins (gateway/web/origins.py; a
    ``<script src>`` needs none), and only the directory's own files: ``/static/demo/`` is the
    demo page's, served under ``/demo/`` by ``callguard demo`` alone."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if os.sep in os.path.normpath(path) or "/" in os.path.normpath(path):
            return "", None
        return super().lookup_path(path)

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        origins: Origins = scope["app"].state.origins
        origin = header(scope, b"origin")
        if origin is not None and origins.allows(scope):
            response.headers["Access-Control-Allow-Origin"] = origin
        elif origin is not None:
            origins.refused(scope)
            scope["app"].state.gateway.metrics.origins_refused.labels("static").inc()
        response.headers["Vary"] = "Origin"
        response.headers["Cache-Control"] = "no-cache"
        if str(full_path).endswith(".js"):
            response.headers["Content-Type"] = "text/javascript; charset=utf-8"
        return response


async def portal_events(request: Request) -> Response:
    """``POST /bitrix/events``: the portal's outgoing webhook (gateway/portal/intake.py)."""
    intake: EventIntake = request.app.state.intake
    return await intake.receive(request)
