"""The bare push server: the baseline the gateway's per-call cost is measured against.

What any push server must do for one call and nothing more: a websocket per tab (the same
uvicorn, websockets implementation and GC policy as the gateway), ``POST /api/calls`` parsed as
JSON, one paint frame encoded and sent to each of the user's tabs. No authentication, lookup,
rules, call state, queues or metrics. The user of a tab is the ``user`` query parameter; the load
generator sends it beside the token the gateway needs.

With ``clears`` it also answers each ``ended`` with a ``clear`` to the user's tabs, as the
gateway's protocol does (design.md §3.4): the same frames a call, still none of the gateway's
work. The gateway pays for that second frame a call whatever it does; measured against this
baseline, what is left is its own cost (bench/throughput.py prints both ratios).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.live import wire
from gateway.run.metrics import Metrics
from gateway.run.probes import GcProbe, LagProbe


class BareState:
    def __init__(self) -> None:
        self.tabs: dict[str, set[WebSocket]] = {}
        self.metrics = Metrics()
        self.lag = LagProbe(self.metrics)
        self.gc = GcProbe(self.metrics)

    @property
    def count(self) -> int:
        return sum(len(s) for s in self.tabs.values())


def bare_app(clears: bool = False) -> Starlette:
    state = BareState()

    async def tab(websocket: WebSocket) -> None:
        await websocket.accept()
        user = websocket.query_params.get("user", "")
        websocket.scope["headers"], websocket.scope["query_string"] = [], b""
        state.tabs.setdefault(user, set()).add(websocket)
        await websocket.send_text('{"type":"hello"}')
        try:
            while True:
                text = await websocket.receive_text()  # the generator's tabs send "ended"
                doc = orjson.loads(text) if clears else None
                if isinstance(doc, dict) and doc.get("type") == "ended":
                    frame = wire.clear(str(doc.get("call_id")))  # the gateway's very frame
                    for socket in list(state.tabs.get(user, ())):
                        await socket.send_text(frame)
        except WebSocketDisconnect:
            pass
        finally:
            state.tabs[user].discard(websocket)

    async def call(request: Request) -> Response:
        doc: dict[str, Any] = orjson.loads(await request.body())
        frame = orjson.dumps({"type": "paint", "call_id": doc["call_id"], "seq": 1}).decode()
        for socket in list(state.tabs.get(str(doc["user_id"]), ())):
            await socket.send_text(frame)
        return Response(b'{"status":"painted"}', media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.lag.start()
        state.gc.start()
        yield
        state.gc.stop()
        await state.lag.stop()

    app = Starlette(
        routes=[Route("/api/calls", call, methods=["POST"]), WebSocketRoute("/ws", tab)],
        lifespan=lifespan,
    )
    app.state.bare = state
    return app
