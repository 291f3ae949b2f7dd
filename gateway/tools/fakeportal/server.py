"""FakePortal: the Bitrix24 REST + outgoing-webhook emulator on loopback (design.md §3.3).

REST calls go to ``/rest/<user>/<code>/<method>[.json]`` with a JSON, form or query-string body.
Tests drive it in-process through this class; benches and subprocesses use the control API under
``/_fake/`` (control.py). Nothing here is authenticated beyond the webhook code:
bind it to loopback only.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from gateway.crm.dataset import Dataset, load_dataset
from gateway.run.config import DEFAULT_STATUS_FIELD
from gateway.tools.fakeportal.batch import run_batch, time_block
from gateway.tools.fakeportal.control import control_routes
from gateway.tools.fakeportal.events import Delivery, Events
from gateway.tools.fakeportal.faults import Fault, Faults, LeakyBucket, Recorder
from gateway.tools.fakeportal.items import Items
from gateway.tools.fakeportal.methods import Context, Methods, Notification, Reply
from gateway.tools.fakeportal.oauth import FakeOAuth
from gateway.tools.fakeportal.store import PortalStore, RestError, parse_params
from rules.policy import Status, load_policy

DEFAULT_CODE = "fake0webhook0code"


class FakePortal:
    def __init__(
        self,
        data: Dataset | None = None,
        *,
        code: str = DEFAULT_CODE,
        user: str = "1",
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        rate_limit: tuple[int, float] | None = None,
        with_status_field: bool = True,
        status_field: str = DEFAULT_STATUS_FIELD,
        statuses: Iterable[Status] | None = None,
        scopes: tuple[str, ...] = ("crm", "user", "department", "im", "telephony"),
    ) -> None:
        self.code = code
        self.user = user
        self.host = host
        self.port = port
        self.status_field = status_field
        states = load_policy().statuses if statuses is None else tuple(statuses)
        self.store = PortalStore(
            data if data is not None else load_dataset(),
            statuses=states,
            status_field=status_field,
            with_status_field=with_status_field,
        )
        self.ctx = Context(user=user, scopes=scopes)
        self.methods = Methods(self.store, self.ctx, self._changed)
        items = Items(self.store)
        self.methods.table.update({"crm.item.get": items.get, "crm.item.list": items.list})
        self.faults = Faults()
        self.faults.latency = latency
        if rate_limit is not None:
            self.faults.bucket = LeakyBucket(*rate_limit)
        self.events = Events(domain="", client_endpoint="")
        self.oauth = FakeOAuth(self)
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> FakePortal:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", "/rest/{user}/{code}/{method}", self._rest)
        for method, path, handler in [*control_routes(self), *self.oauth.routes()]:
            app.router.add_route(method, path, handler)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.events.domain = f"{self.host}:{self.port}"
        self.events.client_endpoint = f"{self.url}rest/"
        return self

    async def close(self) -> None:
        self.faults.released.set()
        await self.events.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakePortal:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def webhook_url(self) -> str:
        """The incoming-webhook base: ``CALLGUARD_PORTAL_URL``."""
        return f"{self.url}rest/{self.user}/{self.code}/"

    # -- what tests read ---------------------------------------------------------------------
    @property
    def requests(self) -> dict[str, int]:
        return dict(self.faults.requests)

    @property
    def total_requests(self) -> int:
        return sum(self.faults.requests.values())

    @property
    def notifications(self) -> list[Notification]:
        return self.ctx.notifications

    @property
    def deliveries(self) -> Recorder[Delivery]:
        return self.events.deliveries

    def reset_counters(self) -> None:
        self.faults.reset_counters()

    @property
    def item_api(self) -> bool:
        """Whether ``crm.item.*`` exists here (False: ERROR_METHOD_NOT_FOUND, like older boxes)."""
        return self.ctx.item_api

    @item_api.setter
    def item_api(self, on: bool) -> None:
        self.ctx.item_api = on

    # -- faults ------------------------------------------------------------------------------
    def set_latency(self, seconds: float, method: str | None = None) -> None:
        if method is None:
            self.faults.latency = seconds
        else:
            self.faults.method_latency[method] = seconds

    def fail(
        self,
        method: str = "*",
        status: int = 503,
        error: str = "QUERY_LIMIT_EXCEEDED",
        description: str = "Too many requests",
        times: int | None = 1,
        reset_in: float | None = None,
    ) -> Fault:
        """The next ``times`` calls of ``method`` answer with this error envelope."""
        return self.faults.add(Fault("error", method, times, status, error, description, reset_in))

    def hang(self, method: str = "*", times: int | None = 1) -> Fault:
        """The next ``times`` calls never answer (until :meth:`release` or close)."""
        return self.faults.add(Fault("hang", method, times))

    def garbage(self, method: str = "*", times: int | None = 1) -> Fault:
        """The next ``times`` calls answer 200 with a body that is not JSON."""
        return self.faults.add(Fault("garbage", method, times))

    def release(self) -> None:
        self.faults.released.set()

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- data changes as a user (events follow) ----------------------------------------------
    def add(self, kind: str, fields: dict[str, Any], by_user: str | int = 1) -> str:
        ident = self.store.add(kind, fields, str(by_user))
        self._changed(kind, "ADD", ident)
        return ident

    def update(
        self, kind: str, ident: str | int, fields: dict[str, Any], by_user: str | int = 1
    ) -> None:
        self._changed(kind, "UPDATE", self.store.update(kind, ident, fields, str(by_user)))

    def delete(self, kind: str, ident: str | int, by_user: str | int = 1) -> None:
        self._changed(kind, "DELETE", self.store.delete(kind, ident))

    def status_item(self, code: str) -> str | None:
        """The list item ID of status ``code`` (what a company's status field holds)."""
        return self.store.enum_item_id(self.status_field, code)

    def set_company_status(
        self, ident: str | int, code: str | None, by_user: str | int = 1
    ) -> None:
        item = self.status_item(code) if code else None
        if code and item is None:
            raise KeyError(f"no list item with XML_ID {code!r} in {self.status_field}")
        self.update("company", ident, {self.status_field: item}, by_user)

    def company_status(self, ident: str | int) -> str | None:
        item = self.store.record("company", ident).get(self.status_field)
        field = self.store.userfields_by_name().get(self.status_field)
        return (
            next((i["XML_ID"] for i in field["LIST"] if i["ID"] == item), None) if field else None
        )

    def _changed(self, kind: str, action: str, ident: str) -> None:
        self.events.emit(f"ONCRM{kind.upper()}{action}", {"FIELDS": {"ID": ident}})

    # -- events ------------------------------------------------------------------------------
    def subscribe(self, handler_url: str, application_token: str, events: list[str]) -> str:
        return self.events.subscribe(handler_url, application_token, events)

    def emit(self, event: str, data: dict[str, Any]) -> int:
        return self.events.emit(event, data)

    def call_init(
        self,
        call_id: str,
        client: str,
        *,
        call_type: int = 2,
        line: str = "reg150908",
        portal_number: str = "+74951112233",
        rest_app_id: str | None = None,
    ) -> int:
        """ONVOXIMPLANTCALLINIT (§1.3): the client's number is PHONE_NUMBER on outgoing calls
        (type 1) and CALLER_ID otherwise; a REST-app call has only CALLER_ID and REST_APP_ID."""
        data: dict[str, Any] = {"CALL_ID": call_id, "CALL_TYPE": str(call_type)}
        if rest_app_id is not None:
            data.update({"CALLER_ID": client, "REST_APP_ID": rest_app_id})
        elif call_type == 1:
            data.update(
                {"ACCOUNT_SEARCH_ID": line, "PHONE_NUMBER": client, "CALLER_ID": portal_number}
            )
        else:
            data.update(
                {"ACCOUNT_SEARCH_ID": line, "PHONE_NUMBER": portal_number, "CALLER_ID": client}
            )
        return self.emit("ONVOXIMPLANTCALLINIT", data)

    def call_start(self, call_id: str, user_id: str | int) -> int:
        return self.emit("ONVOXIMPLANTCALLSTART", {"CALL_ID": call_id, "USER_ID": str(user_id)})

    def call_end(
        self,
        call_id: str,
        client: str,
        user_id: str | int,
        *,
        call_type: int = 2,
        duration: int = 0,
        failed_code: str = "200",
        failed_reason: str = "",
        portal_number: str = "+74951112233",
    ) -> int:
        return self.emit(
            "ONVOXIMPLANTCALLEND",
            {
                "CALL_ID": call_id,
                "CALL_TYPE": str(call_type),
                "PHONE_NUMBER": client,
                "PORTAL_NUMBER": portal_number,
                "PORTAL_USER_ID": str(user_id),
                "CALL_DURATION": str(duration),
                "CALL_START_DATE": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                "COST": "0",
                "COST_CURRENCY": "",
                "CALL_FAILED_CODE": failed_code,
                "CALL_FAILED_REASON": failed_reason,
                "CRM_ACTIVITY_ID": "0",
            },
        )

    # -- REST --------------------------------------------------------------------------------
    async def _rest(self, request: web.Request) -> web.StreamResponse:
        started = time.time()
        method = request.match_info["method"].lower().removesuffix(".json")
        self.faults.count(method)
        delay = self.faults.delay(method)
        if delay > 0:
            await asyncio.sleep(delay)
        if self.faults.take(method, ("hang",)) is not None:
            await self.faults.released.wait()
            raise web.HTTPServiceUnavailable()
        if request.match_info["user"] != self.user or request.match_info["code"] != self.code:
            return error_response(401, "NO_AUTH_FOUND", "Wrong authorization data")
        if self.faults.rate_limited():
            return error_response(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
        if self.faults.take(method, ("garbage",)) is not None:
            return web.Response(
                status=200, text='{"result": {"LEAD": [1', content_type="application/json"
            )
        fault = self.faults.take(method, ("error",))
        if fault is not None:
            extra = (
                {
                    "time": {
                        **time_block(started),
                        "operating_reset_at": time.time() + fault.reset_in,
                    }
                }
                if fault.reset_in
                else {}
            )
            return error_response(fault.status, fault.error, fault.description, extra)
        try:
            params = await _read_params(request)
            self.faults.commands[method] += 1
            if self.faults.command_latency > 0:
                cmd = params.get("cmd") if method == "batch" else None
                count = len(cmd) if isinstance(cmd, dict | list) else 1
                await asyncio.sleep(self.faults.command_latency * count)
            if method == "batch":
                reply = run_batch(params, self._sub_command)
            else:
                reply = self.methods.execute(method, params)
        except RestError as err:
            return error_response(err.status, err.error, err.description)
        body: dict[str, Any] = {"result": reply.result}
        if reply.next is not None:
            body["next"] = reply.next
        if reply.total is not None:
            body["total"] = reply.total
        body["time"] = time_block(started)
        return web.json_response(body, dumps=_dumps)

    def _sub_command(self, method: str, params: dict[str, Any]) -> Reply:
        self.faults.commands[method] += 1
        self.faults.check_error(method)
        return self.methods.execute(method, params)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def error_response(
    status: int, error: str, description: str, extra: dict[str, Any] | None = None
) -> web.Response:
    body = {"error": error, "error_description": description, **(extra or {})}
    return web.json_response(body, status=status, dumps=_dumps)


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Query string, then the body: JSON (``application/json``) or a form with bracket keys."""
    params = parse_params(request.query_string)
    if not request.can_read_body:
        return params
    raw = await request.read()
    if request.content_type == "application/json":
        try:
            doc = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise RestError(400, "INVALID_REQUEST", "Request body is not valid JSON") from None
        if not isinstance(doc, dict):
            raise RestError(400, "INVALID_REQUEST", "Request body must be a JSON object")
        params.update(doc)
    else:
        params.update(parse_params(raw.decode("utf-8", "replace")))
    return params
