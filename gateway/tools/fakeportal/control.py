"""The fake portal's control API for benches and subprocesses (tests in-process use FakePortal).

``GET /_fake/counters``, ``POST /_fake/reset``,
``POST /_fake/latency {"ms", "method"?, "per_command_ms"?}``,
``POST /_fake/fault {"kind": "error"|"hang"|"garbage", "method", "times", "status", "error",
"description", "reset_in"}``, ``POST /_fake/clear``, ``GET /_fake/notifications``,
``POST /_fake/subscribe {"handler", "application_token", "events"}``, ``POST /_fake/emit {"event",
"data"}``, ``POST /_fake/change {"action": "add"|"update"|"delete", "kind", "id", "fields",
"by_user"}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.tools.fakeportal.faults import Fault
from gateway.tools.fakeportal.methods import Notification
from gateway.tools.fakeportal.store import RestError

if TYPE_CHECKING:
    from gateway.tools.fakeportal.server import FakePortal

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def control_routes(portal: FakePortal) -> list[tuple[str, str, Handler]]:
    async def counters(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": portal.requests,
                "commands": dict(portal.faults.commands),
                "total": portal.total_requests,
            }
        )

    async def reset(request: web.Request) -> web.Response:
        portal.reset_counters()
        return web.json_response({"ok": True})

    async def latency(request: web.Request) -> web.Response:
        doc = await request.json()
        portal.set_latency(float(doc.get("ms", 0)) / 1000, doc.get("method"))
        if "per_command_ms" in doc:  # server time per method run (each batch sub-request)
            portal.faults.command_latency = float(doc["per_command_ms"]) / 1000
        return web.json_response({"ok": True})

    async def fault(request: web.Request) -> web.Response:
        doc = await request.json()
        kind = doc.pop("kind", "error")
        if kind not in ("error", "hang", "garbage"):
            return web.json_response({"error": f"unknown fault kind {kind!r}"}, status=400)
        portal.faults.add(Fault(kind, **doc))
        return web.json_response({"ok": True})

    async def clear(request: web.Request) -> web.Response:
        portal.clear_faults()
        return web.json_response({"ok": True})

    async def notifications(request: web.Request) -> web.Response:
        return web.json_response([vars_of(n) for n in portal.notifications])

    async def subscribe(request: web.Request) -> web.Response:
        doc = await request.json()
        ident = portal.subscribe(doc["handler"], doc["application_token"], list(doc["events"]))
        return web.json_response({"id": ident})

    async def emit(request: web.Request) -> web.Response:
        doc = await request.json()
        return web.json_response({"queued": portal.emit(doc["event"], doc.get("data", {}))})

    async def change(request: web.Request) -> web.Response:
        doc = await request.json()
        action, kind, by = doc["action"], doc["kind"], doc.get("by_user", 1)
        try:
            if action == "add":
                return web.json_response({"id": portal.add(kind, doc.get("fields", {}), by)})
            if action == "update":
                portal.update(kind, doc["id"], doc.get("fields", {}), by)
            else:
                portal.delete(kind, doc["id"], by)
        except RestError as err:
            body = {"error": err.error, "error_description": err.description}
            return web.json_response(body, status=err.status)
        return web.json_response({"ok": True})

    return [
        ("GET", "/_fake/counters", counters),
        ("POST", "/_fake/reset", reset),
        ("POST", "/_fake/latency", latency),
        ("POST", "/_fake/fault", fault),
        ("POST", "/_fake/clear", clear),
        ("GET", "/_fake/notifications", notifications),
        ("POST", "/_fake/subscribe", subscribe),
        ("POST", "/_fake/emit", emit),
        ("POST", "/_fake/change", change),
    ]


def vars_of(note: Notification) -> dict[str, Any]:
    return {"id": note.id, "user_id": note.user_id, "message": note.message, "tag": note.tag}
