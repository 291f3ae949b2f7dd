"""Issue 14 items 5 and 6 against real ``callguard serve`` / ``demo`` processes: page origins on
``/ws`` and ``/static``, security headers, ``/healthz`` for strangers, and ``applied`` frames."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from gateway.live.tokens import issue_token
from tests.processes import Served, callguard
from tests.timing import timeout

SECRET = "served-test-secret-0123456789abcdef"
API_KEY = "served-test-api-key-0123456789"
PUBLIC = "https://callguard.example"
RED_PHONE = "+7 (495) 123-45-67"


@pytest.fixture(scope="module")
def gw() -> Iterator[Served]:
    env = {
        "CALLGUARD_SECRET": SECRET,
        "CALLGUARD_API_KEY": API_KEY,
        # The default allow-list: PUBLIC_URL's origin (the portal's needs REST mode: test_app.py).
        "CALLGUARD_PUBLIC_URL": f"{PUBLIC}/",
    }
    with callguard("serve", env=env) as served:
        yield served


def tab(gw: Served, origin: str | None, user: str = "7") -> ClientConnection:
    url = f"ws://127.0.0.1:{gw.port}/ws?token={issue_token(SECRET, user, 600)}"
    return connect(url, origin=Origin(origin) if origin else None, open_timeout=timeout())


def metric(base: str, line: str) -> float:
    for row in httpx.get(f"{base}/metrics", timeout=timeout()).text.splitlines():
        if row.startswith(line + " "):
            return float(row.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("origin", [None, PUBLIC, "own"])
def test_a_tab_from_an_allowed_origin_or_from_no_page_connects(gw: Served, origin: str) -> None:
    with tab(gw, gw.base if origin == "own" else origin) as ws:
        assert json.loads(ws.recv(timeout()))["type"] == "hello"


@pytest.mark.parametrize("origin", ["https://evil.example", "null", f"{PUBLIC}.evil.example"])
def test_a_tab_from_another_origin_is_refused_403_before_accept(gw: Served, origin: str) -> None:
    refused_line = 'callguard_origins_refused_total{path="ws"}'
    before = metric(gw.base, refused_line)
    with pytest.raises(InvalidStatus) as refused:
        tab(gw, origin)
    assert refused.value.response.status_code == 403
    assert json.loads(refused.value.response.body or b"{}")["error"] == "origin_not_allowed"
    assert metric(gw.base, refused_line) == before + 1


def test_static_cors_only_for_allowed_origins_and_no_demo_assets(gw: Served) -> None:
    with httpx.Client(base_url=gw.base, timeout=timeout()) as http:
        mine = http.get("/static/callguard.js", headers={"Origin": PUBLIC})
        assert mine.headers["access-control-allow-origin"] == PUBLIC
        assert mine.headers["x-content-type-options"] == "nosniff"
        other = http.get("/static/callguard.js", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        for path in ("/static/demo/index.html", "/static/demo/demo.js", "/demo/"):
            assert http.get(path).status_code == 404, path


def test_healthz_details_need_the_key_or_loopback(gw: Served) -> None:
    # Through a proxy on this machine (uvicorn trusts loopback's X-Forwarded-For): a stranger.
    stranger = {"X-Forwarded-For": "203.0.113.9"}
    with httpx.Client(base_url=gw.base, timeout=timeout()) as http:
        assert http.get("/healthz", headers=stranger).json() == {"ok": True}
        wrong = {**stranger, "Authorization": "Bearer nope"}
        assert http.get("/healthz", headers=wrong).json() == {"ok": True}
        keyed = http.get("/healthz", headers={**stranger, "Authorization": f"Bearer {API_KEY}"})
        assert keyed.json()["directory"]["source"] == "datafile"
        local = http.get("/healthz").json()
        assert {"version", "directory", "tabs", "users"} <= local.keys()


def test_applied_counts_only_for_paints_the_tab_was_sent(gw: Served) -> None:
    applied = "callguard_ring_to_applied_seconds_count"
    unpainted = 'callguard_frames_rejected_total{code="unpainted_applied"}'
    before, rejected = metric(gw.base, applied), metric(gw.base, unpainted)
    with tab(gw, None, user="8") as ws:
        ws.recv(timeout())
        for n in range(5):  # calls that never existed on this tab
            ws.send(
                json.dumps({"type": "applied", "call_id": f"x{n}", "seq": 1, "latency_ms": 3600})
            )
        ws.send(json.dumps({"type": "call", "call_id": "c1", "phone": RED_PHONE}))
        paint = json.loads(ws.recv(timeout()))
        assert paint["type"] == "paint", paint
        for _ in range(3):  # one paint: one applied counts
            ws.send(
                json.dumps(
                    {"type": "applied", "call_id": "c1", "seq": paint["seq"], "latency_ms": 80}
                )
            )
        ws.send(json.dumps({"type": "ended", "call_id": "c1"}))
        assert json.loads(ws.recv(timeout()))["type"] == "clear"  # every frame before it was read
    assert metric(gw.base, applied) == before + 1
    assert metric(gw.base, unpainted) == rejected + 7


def test_the_demo_page_gets_its_policy_and_its_own_origin_only() -> None:
    with callguard("demo") as demo, httpx.Client(base_url=demo.base, timeout=timeout()) as http:
        page = http.get("/demo/")
        assert page.headers["x-content-type-options"] == "nosniff"
        policy = page.headers["content-security-policy"]
        assert "frame-ancestors 'self'" in policy
        assert "default-src 'self'" in policy
        issued = http.get("/demo/api/token?user=6").json()["token"]
        url = f"ws://127.0.0.1:{demo.port}/ws?token={issued}"
        with connect(url, origin=Origin(demo.base), open_timeout=timeout()) as ws:
            assert json.loads(ws.recv(timeout()))["user_id"] == "6"
        with pytest.raises(InvalidStatus) as refused:
            connect(url, origin=Origin("https://evil.example"), open_timeout=timeout())
        assert refused.value.response.status_code == 403
