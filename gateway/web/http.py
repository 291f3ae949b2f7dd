"""Plain HTTP endpoints: ``POST /api/calls``, ``GET /healthz``, ``GET /metrics`` and the snippet's
static files (design.md §3.5). Error bodies are JSON ``{"error": code, "message": text}``.
"""

from __future__ import annotations

import hmac
import math
import os
from ipaddress import ip_address

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from gateway.live import wire
from gateway.live.inflight import Busy
from gateway.portal.intake import EventIntake
from gateway.run.runtime import Gateway
from gateway.userid import InvalidUserId, user_id
from gateway.web.origins import Origins, header
from gateway.web.responses import failure, json_response
from rules.phones import InvalidPhone

MAX_BODY = 16 * 1024


async def post_call(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    key = gateway.settings.api_key
    if not key:
        return failure(
            503, "api_disabled", "POST /api/calls is off: set CALLGUARD_API_KEY to enable it"
        )
    if not _bearer_ok(request, key):
        return failure(
            401,
            "unauthorized",
            "missing or wrong API key: send 'Authorization: Bearer <CALLGUARD_API_KEY>'",
            **{"WWW-Authenticate": "Bearer"},
        )
    too_large = failure(413, "too_large", f"request body larger than {MAX_BODY} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return too_large
    # Read no further than the bound: an oversized body is refused, not first held in memory.
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return too_large
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return failure(422, "invalid_json", "request body is not valid JSON")
    try:
        user_id, call_id, phone, direction = _call_fields(doc)
        asked = doc.get("lang")  # optional: the paint's text language (else CALLGUARD_LANG)
        lang = wire.lang_of(asked if isinstance(asked, str) else None, gateway.settings.lang)
        paint = await gateway.calls.start_call(
            user_id, call_id, phone, direction, source="api", lang=lang
        )
    except wire.WireError as err:
        return failure(422, "invalid_request", err.message)
    except InvalidPhone as err:
        return failure(422, wire.INVALID_PHONE, str(err))
    except Busy as busy:
        # 503, not 429: the gateway has no room now (for this user or at all); the client did
        # not send too fast, and a PBX posts for every user. A place frees within the deadline.
        retry = str(math.ceil(gateway.settings.lookup_deadline))
        return failure(503, wire.BUSY, busy.message, **{"Retry-After": retry})
    if paint is None:
        return json_response({"call_id": call_id, "status": "superseded"}, 202)
    return json_response(
        {"call_id": call_id, "status": "painted", "seq": paint.seq, **paint.decision.to_dict()}
    )


def _call_fields(doc: object) -> tuple[str, str, str, wire.Direction]:
    if not isinstance(doc, dict):
        raise wire.WireError(wire.INVALID_MESSAGE, "body must be a JSON object")
    try:
        user = user_id(doc.get("user_id"))
    except InvalidUserId as err:
        raise wire.WireError(wire.INVALID_MESSAGE, f"'user_id': {err}") from None
    call_id = wire.check_call_id(doc.get("call_id"))
    phone = doc.get("phone")
    if not isinstance(phone, str) or not phone.strip() or len(phone) > wire.MAX_PHONE:
        raise wire.WireError(wire.INVALID_MESSAGE, "'phone' must be a non-empty string")
    direction = doc.get("direction", "in")
    if direction not in wire.DIRECTIONS:
        raise wire.WireError(wire.INVALID_MESSAGE, '\'direction\' must be "in" or "out"')
    return user, call_id, phone, direction


def _bearer_ok(request: Request, key: str | None) -> bool:
    if not key:
        return False
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
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
    if not (_bearer_ok(request, gateway.settings.api_key) or _from_loopback(request)):
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
