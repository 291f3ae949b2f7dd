"""``POST /api/calls`` (design.md §3.5): a PBX or a load test reports a call, the gateway paints
the user's tabs and answers the decision.

A plain ASGI handler, not a Starlette endpoint: this is the route every reported call takes, and
Starlette's request and response objects, the body stream and the response's header handling
cost more CPU than the lookup, the decision and the delivery together (bench/call_cost.py:
``http intake``). It reads the ASGI messages and writes the two response messages itself; what it
answers is unchanged: the statuses, JSON bodies (``{"error": code, "message": text}`` for
errors) and headers (``Content-Type``, ``Content-Length``, ``X-Content-Type-Options: nosniff``,
``WWW-Authenticate`` on 401) of the Starlette endpoint it replaces. A crash answers 500 and is
logged; a client that goes away before its body arrived gets nothing.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from gateway.live import wire
from gateway.live.decisions import PerDecision
from gateway.live.inflight import Busy
from gateway.run.runtime import Gateway
from gateway.userid import InvalidUserId, user_id
from gateway.web.http import bearer_matches
from gateway.web.responses import error_body
from rules.model import Decision
from rules.phones import InvalidPhone

log = logging.getLogger("callguard.web")

MAX_BODY = 16 * 1024
JSON = (b"content-type", b"application/json")
NOSNIFF = (b"x-content-type-options", b"nosniff")  # as SecurityHeaders gives every other answer


# A painted call's answer carries its decision, and Decision.to_dict walks the owner and the
# subject field by field: 9% of a warm POST's Python (bytecodes counted under sys.settrace). The
# same few decisions come back call after call: their JSON is made once per decision.
_decision_json: PerDecision[bytes] = PerDecision(lambda d, _: orjson.dumps(d.to_dict()))


class Refusal(Exception):
    """An answer other than the paint: its status, error code, message and extra headers."""

    def __init__(self, status: int, code: str, message: str, *headers: tuple[bytes, bytes]) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


class ClientGone(Exception):
    """The client disconnected before its body arrived: no one to answer."""


async def post_call(scope: Scope, receive: Receive, send: Send) -> None:
    gateway: Gateway = scope["app"].gateway  # a GatewayApp's (gateway/web/app.py)
    headers: tuple[tuple[bytes, bytes], ...] = ()
    try:
        status, body = await _call(gateway, scope, receive)
    except Refusal as refused:
        status, body = refused.status, error_body(refused.code, refused.message)
        headers = refused.headers
    except ClientGone:
        return
    except Exception:
        log.exception("POST /api/calls failed")
        status, body = 500, error_body("internal_error", "the gateway failed; see its log")
    length = (b"content-length", str(len(body)).encode())
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [length, JSON, NOSNIFF, *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _call(gateway: Gateway, scope: Scope, receive: Receive) -> tuple[int, bytes]:
    key = gateway.settings.api_key
    if not key:
        message = "POST /api/calls is off: set CALLGUARD_API_KEY to enable it"
        raise Refusal(503, "api_disabled", message)
    authorization, declared = _headers(scope)
    if not bearer_matches(authorization, key):
        message = "missing or wrong API key: send 'Authorization: Bearer <CALLGUARD_API_KEY>'"
        raise Refusal(401, "unauthorized", message, (b"www-authenticate", b"Bearer"))
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _too_large()
    doc = _json(await _body(receive))
    try:
        user, call_id, phone, direction = _call_fields(doc)
        asked = doc.get("lang")  # optional: the paint's text language (else CALLGUARD_LANG)
        lang = wire.lang_of(asked if isinstance(asked, str) else None, gateway.settings.lang)
        paint = await gateway.calls.start_call(
            user, call_id, phone, direction, source="api", lang=lang
        )
    except wire.WireError as err:
        raise Refusal(422, "invalid_request", err.message) from None
    except InvalidPhone as err:
        raise Refusal(422, wire.INVALID_PHONE, str(err)) from None
    except Busy as busy:
        # 503, not 429: the gateway has no room now (for this user or at all); the client did
        # not send too fast, and a PBX posts for every user. A place frees within the deadline.
        retry = str(math.ceil(gateway.settings.lookup_deadline)).encode()
        raise Refusal(503, wire.BUSY, busy.message, (b"retry-after", retry)) from None
    if paint is None:
        return 202, orjson.dumps({"call_id": call_id, "status": "superseded"})
    return 200, _painted_answer(call_id, paint.seq, paint.decision)


def _painted_answer(call_id: str, seq: int, decision: Decision) -> bytes:
    """``{"call_id", "status": "painted", "seq", **decision.to_dict()}`` as JSON."""
    head = orjson.dumps({"call_id": call_id, "status": "painted", "seq": seq})
    return head[:-1] + b"," + _decision_json.get(decision)[1:]  # two JSON objects, joined into one


def _headers(scope: Scope) -> tuple[str, str]:
    """The Authorization and Content-Length headers ("" when absent)."""
    authorization = declared = ""
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-length":
            declared = value.decode("latin-1")
    return authorization, declared


async def _body(receive: Receive) -> bytes:
    # Read no further than the bound: an oversized body is refused, not first held in memory.
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        body += bytes(message.get("body", b""))
        if len(body) > MAX_BODY:
            raise _too_large()
        if not message.get("more_body", False):
            return body


def _too_large() -> Refusal:
    return Refusal(413, "too_large", f"request body larger than {MAX_BODY} bytes")


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Refusal(422, "invalid_json", "request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise Refusal(422, "invalid_request", "body must be a JSON object")
    return doc


def _call_fields(doc: dict[str, Any]) -> tuple[str, str, str, wire.Direction]:
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


class CallRoute:
    """:func:`post_call` for Starlette's router, which mounts an object with ``__call__`` as the
    ASGI app it is (a function it would wrap as a request -> response endpoint). The gateway
    takes ``POST /api/calls`` before the router; this serves the same path under a root path."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await post_call(scope, receive, send)
