"""The ``/ws`` endpoint (design.md §3.4): one authenticated websocket per browser tab.

Order on connect: refuse a page origin that is not allowed (HTTP 403, before accept: see
gateway/web/origins.py), accept, verify the token (4401 and nothing else on failure), register
the tab, queue ``hello`` and then the user's current paints, and schedule the token's renewal.
After that the receive loop only reads client frames; everything sent goes through the tab
(gateway/live/tabs.py), which writes a frame at once while nothing waits before it and otherwise
queues it for its one sender task, so frames keep their order. Every close is counted by code:
the gateway's in ``callguard_tab_closes``, the browser's or the network's in
``callguard_tab_disconnects``.
Bad frames get an ``error`` and the socket stays open, until :class:`gateway.live.tabs.Conduct`
calls it abuse (1008). A ``call`` frame with a number that is not a phone number, beyond the
tab's ``CALLGUARD_TAB_CALL_RATE``, or while its user (or the gateway) has as many calls in flight
as allowed (``busy``, gateway/live/inflight.py), gets an ``error`` and is no strike: the frame is
well formed. A tab over its call rate is not read again until its rate allows the next call.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qsl

from starlette.websockets import WebSocket

from gateway.live import wire
from gateway.live.inflight import Busy
from gateway.live.tabs import CLOSE_ABUSE, CLOSE_TOKEN, SEND_NOW, Tab
from gateway.live.tokens import TokenError, check_token
from gateway.run.runtime import Gateway
from gateway.web.origins import Origins
from gateway.web.responses import failure
from rules.phones import InvalidPhone

log = logging.getLogger("callguard.socket")

# Frames one tab may have handled before its receive loop lets the event loop run others. The
# server parses a read a slice at a time (gateway/run/tabsocket.py) but queues a slice's frames
# at once, ~200 call frames, and a queued frame is taken without suspending; a cold, refused
# (busy) or warm call is handled without suspending too. Every 16 frames the loop is held at
# most ~16 frames' work (~2 ms): without it a burst held other tabs until it was done
# (tests/live/test_turns.py), and a tab's usual 2-3 frames a call rarely pay the yield (~3 us).
FRAMES_PER_TURN = 16


async def tab_endpoint(websocket: WebSocket) -> None:
    gateway: Gateway = websocket.app.state.gateway
    origins: Origins = websocket.app.state.origins
    if not origins.allows(websocket.scope):
        origins.refused(websocket.scope)
        gateway.metrics.origins_refused.labels("ws").inc()
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            reason = "this page's origin is not in CALLGUARD_ALLOWED_ORIGINS"
            await websocket.send_denial_response(failure(403, "origin_not_allowed", reason))
        else:  # a close before accept: the server answers the handshake with 403
            await websocket.close(CLOSE_ABUSE)
        return
    await websocket.accept()
    scope = websocket.scope
    query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
    token = query.get("token")
    # A tab lives for hours: keep none of its handshake (the headers, the token in the query).
    scope["headers"], scope["query_string"] = [], b""
    settings = gateway.settings
    # The portal's language (the snippet sends BX.message('LANGUAGE_ID')): this tab's texts.
    lang = wire.lang_of(query.get("lang"), settings.lang)
    try:
        identity = check_token(
            settings.secret, token, leeway=settings.token_leeway, max_ttl=settings.token_max_ttl
        )
    except TokenError as err:
        gateway.metrics.tab_closes.labels(str(CLOSE_TOKEN)).inc()
        log.debug("refused a tab (4401): %s", err)
        # A close reason is at most 123 bytes (RFC 6455 5.5).
        await websocket.close(CLOSE_TOKEN, str(err).encode()[:123].decode(errors="ignore"))
        return
    user_id = identity.user_id
    offered = scope.get("extensions", {}).get(SEND_NOW)  # our uvicorn protocol's, else none
    tab = gateway.tabs.open(user_id, websocket, offered() if offered is not None else None)
    tab.push(None, wire.hello(user_id, settings.heartbeat, gateway.version))
    for call_id, frame in gateway.calls.current_frames(user_id):
        tab.push(call_id, frame)
    gateway.renewals.add(tab, identity)
    handled = 0
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                # Ours are counted in Tab.close; the peer's too when a send to it failed first.
                if not tab.closed_by_gateway:
                    code = message.get("code") or 1005
                    gateway.metrics.tab_disconnects.labels(str(code)).inc()
                break
            if tab.closed:
                continue  # closing: read until the peer answers our close frame
            text = message.get("text")
            data = text if text is not None else message.get("bytes", b"")
            await _handle(gateway, tab, data, lang)
            handled += 1
            if handled % FRAMES_PER_TURN == 0:
                await asyncio.sleep(0)  # others' turn: see FRAMES_PER_TURN
    finally:
        tab.outbox.close()
        gateway.tabs.remove(tab)
        gateway.renewals.forget(tab)


async def _handle(gateway: Gateway, tab: Tab, data: str | bytes, lang: str) -> None:
    try:
        frame = wire.decode(data, gateway.settings.max_frame)
    except wire.WireError as err:
        _reject(gateway, tab, err.code, err.message)
        return
    calls = gateway.calls
    if isinstance(frame, wire.CallFrame):
        if not tab.may_call():
            _refuse(gateway, tab, wire.RATE_LIMITED, _rate_message(gateway))
            # Backpressure: read this tab's next frame when its budget has a token again. Its
            # frames wait in the socket's buffers meanwhile (uvicorn stops reading while we do
            # not take its messages), so a flood costs the gateway the rate, not the flood.
            await asyncio.sleep(tab.call_wait())
            return
        # Several tabs of one user report the same ring: the first decides, the rest share it.
        # The lookup may take up to the deadline, so this tab's later frames do not wait for it.
        try:
            await calls.submit(
                tab.user_id,
                frame.call_id,
                frame.phone,
                frame.direction,
                only_if_unpainted=True,
                source="ws",
                lang=lang,
            )
        except InvalidPhone as err:
            _refuse(gateway, tab, wire.INVALID_PHONE, str(err))
        except Busy as busy:
            _refuse(gateway, tab, wire.BUSY, busy.message)
    elif isinstance(frame, wire.EndedFrame):
        await calls.end_call(tab.user_id, frame.call_id)
    elif tab.take_painted(frame.call_id):
        calls.applied(tab.user_id, frame)
    else:  # for a paint this tab never got: nothing to measure; dropped without a strike, as
        # a page that reconnected may still acknowledge a paint its old socket received
        gateway.metrics.frames_rejected.labels("unpainted_applied").inc()


def _reject(gateway: Gateway, tab: Tab, code: str, message: str) -> None:
    gateway.metrics.frames_rejected.labels(code).inc()
    if not tab.strike():
        tab.push(None, wire.error(code, message))


def _refuse(gateway: Gateway, tab: Tab, code: str, message: str) -> None:
    """A well-formed frame we do not act on: an ``error`` answer, counted, but no strike."""
    gateway.metrics.frames_rejected.labels(code).inc()
    tab.push(None, wire.error(code, message))


def _rate_message(gateway: Gateway) -> str:
    rate = gateway.settings.tab_call_rate
    return f"more than {rate:g} call frames per second from this tab; this call is not looked up"
