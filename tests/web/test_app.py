"""The app in process (Starlette TestClient): /ws, /api/calls, healthz, metrics, static, demo."""

from __future__ import annotations

import time
from typing import ClassVar

import jwt
import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from gateway.crm.datafile import DataFileDirectory
from gateway.crm.dataset import parse_dataset
from gateway.live.calls import LATE_REASON
from gateway.run.config import ConfigError, Settings
from gateway.web.app import create_app
from rules import decide
from tests.live.conftest import (
    API_KEY,
    OWNER,
    RED_CALLER,
    RED_PHONE,
    FailingDirectory,
    HangingDirectory,
    token_for,
)
from tests.support import TEST_SECRET, gateway_settings


def url_7() -> str:
    # A token made now: one made at collection could be old enough, by the time the test runs,
    # to be renewed at once, and the renewal would come between the frames under test.
    return f"/ws?token={token_for(RED_CALLER)}"


AUTH = {"Authorization": f"Bearer {API_KEY}"}


def call(call_id: str = "c1", phone: str = RED_PHONE) -> dict[str, str]:
    return {"type": "call", "call_id": call_id, "phone": phone, "direction": "in"}


@pytest.mark.parametrize(
    "token",
    [
        None,
        "garbage",
        token_for("7", ttl=60).replace(".", ".x", 1),
        # Beyond the minute of clock skew the gateway allows.
        jwt.encode({"sub": "7", "exp": time.time() - 120}, TEST_SECRET, algorithm="HS256"),
        jwt.encode({"sub": "7", "exp": time.time() + 60}, TEST_SECRET * 2, algorithm="HS512"),
    ],
    ids=["missing", "garbage", "bad-signature", "expired", "wrong-algorithm"],
)
def test_a_bad_token_closes_4401_before_anything_else(
    client: TestClient, token: str | None
) -> None:
    url = "/ws" if token is None else f"/ws?token={token}"
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(url) as ws:
        ws.receive_text()
    assert closed.value.code == 4401


def test_hello_then_paints_for_every_tab_of_the_caller_only(client: TestClient) -> None:
    with (
        client.websocket_connect(f"/ws?token={token_for(RED_CALLER)}") as tab1,
        client.websocket_connect(f"/ws?token={token_for(RED_CALLER)}") as tab2,
        client.websocket_connect(f"/ws?token={token_for(OWNER)}") as other,
    ):
        for ws, user in ((tab1, RED_CALLER), (tab2, RED_CALLER), (other, OWNER)):
            assert ws.receive_json() == {
                "type": "hello",
                "user_id": user,
                "heartbeat": 2.0,
                "version": "0.1.0",
            }
        tab1.send_json(call())
        for ws in (tab1, tab2):
            paint = ws.receive_json()
            assert paint["type"] == "paint"
            assert (paint["call_id"], paint["seq"], paint["colour"]) == ("c1", 1, "red")
            assert paint["background"] == "#d32f2f"
            assert paint["rule"] == "foreign-client-in-work"
            assert "Ромашка" in paint["text"]
        # The other user's next frame is its own call's paint: it never saw the red one.
        other.send_json(call("c9"))
        mine = other.receive_json()
        assert (mine["call_id"], mine["colour"]) == ("c9", "none")


def test_a_tab_that_reconnects_gets_the_current_paint(client: TestClient) -> None:
    url = f"/ws?token={token_for(RED_CALLER)}"
    with client.websocket_connect(url) as ws:
        ws.receive_json()
        ws.send_json(call())
        first = ws.receive_json()
    with client.websocket_connect(url) as ws:
        assert ws.receive_json()["type"] == "hello"
        assert ws.receive_json() == first
        ws.send_json({"type": "ended", "call_id": "c1"})
        assert ws.receive_json() == {"type": "clear", "call_id": "c1"}
    with client.websocket_connect(url) as ws:
        ws.receive_json()
        ws.send_json(call("c2", "8 916 000-11-22"))
        assert ws.receive_json()["call_id"] == "c2"  # nothing of the ended call came first


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("x" * 5000, "frame_too_large"),
        ("{nope", "invalid_json"),
        ('{"type":"dance"}', "unknown_type"),
        ('{"type":"call","call_id":"c1","phone":"not a number"}', "invalid_phone"),
        ('{"type":"call","call_id":"c1"}', "invalid_message"),
    ],
)
def test_a_bad_frame_gets_an_error_and_the_socket_stays_open(
    client: TestClient, frame: str, code: str
) -> None:
    with client.websocket_connect(f"/ws?token={token_for(RED_CALLER)}") as ws:
        ws.receive_json()
        ws.send_text(frame)
        error = ws.receive_json()
        assert (error["type"], error["code"]) == ("error", code)
        assert error["message"]
        ws.send_json(call())
        assert ws.receive_json()["type"] == "paint"


def test_repeated_abuse_closes_1008(client: TestClient) -> None:
    with client.websocket_connect(f"/ws?token={token_for(RED_CALLER)}") as ws:
        ws.receive_json()
        for _ in range(8):
            ws.send_text("{nope")
        errors = [ws.receive_json() for _ in range(7)]
        assert {e["code"] for e in errors} == {"invalid_json"}
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008


def test_applied_latency_reaches_the_metrics(client: TestClient) -> None:
    with client.websocket_connect(f"/ws?token={token_for(RED_CALLER)}") as ws:
        ws.receive_json()
        ws.send_json(call())
        paint = ws.receive_json()
        ws.send_json({"type": "applied", "call_id": "c1", "seq": paint["seq"], "latency_ms": 85})
        ws.send_json({"type": "ended", "call_id": "c1"})
        ws.receive_json()
    text = client.get("/metrics").text
    assert "callguard_ring_to_applied_seconds_count 1.0" in text


def test_an_applied_counts_once_per_paint_not_for_the_clear(client: TestClient) -> None:
    """The tab got a paint and then the call's clear: one ``applied`` counts, a second is
    dropped as unpainted (a clear is not acknowledged, so it gives no second acknowledgement)."""
    with client.websocket_connect(f"/ws?token={token_for(RED_CALLER)}") as ws:
        ws.receive_json()
        ws.send_json(call())
        paint = ws.receive_json()
        ws.send_json({"type": "ended", "call_id": "c1"})
        assert ws.receive_json() == {"type": "clear", "call_id": "c1"}
        applied = {"type": "applied", "call_id": "c1", "seq": paint["seq"], "latency_ms": 85}
        ws.send_json(applied)
        ws.send_json(applied)
    text = client.get("/metrics").text
    assert "callguard_ring_to_applied_seconds_count 1.0" in text
    assert 'callguard_frames_rejected_total{code="unpainted_applied"} 1.0' in text


def test_a_call_timeout_clears_the_call() -> None:
    app = create_app(gateway_settings(call_timeout=0.2))
    with TestClient(app) as client, client.websocket_connect(url_7()) as ws:
        ws.receive_json()
        ws.send_json(call())
        assert ws.receive_json()["type"] == "paint"
        assert ws.receive_json() == {"type": "clear", "call_id": "c1"}


def test_a_hanging_crm_paints_none_in_time() -> None:
    settings = gateway_settings(lookup_deadline=0.1)
    with TestClient(create_app(settings, HangingDirectory())) as client:
        with client.websocket_connect(f"/ws?token={token_for(RED_CALLER)}") as ws:
            ws.receive_json()
            ws.send_json(call())
            paint = ws.receive_json()
            assert (paint["colour"], paint["background"], paint["text"]) == (
                "none",
                None,
                LATE_REASON,
            )
        assert 'callguard_lookups_total{outcome="late"} 1.0' in client.get("/metrics").text


def test_a_failing_crm_paints_none_and_healthz_says_503() -> None:
    settings = gateway_settings(api_key=API_KEY)
    with TestClient(create_app(settings, FailingDirectory())) as client:
        with client.websocket_connect(f"/ws?token={token_for(RED_CALLER)}") as ws:
            ws.receive_json()
            ws.send_json(call())
            assert ws.receive_json()["colour"] == "none"
        stranger = client.get("/healthz")
        assert (stranger.status_code, stranger.json()) == (503, {"ok": False})
        health = client.get("/healthz", headers=AUTH)
        assert health.status_code == 503
        assert health.json()["ok"] is False
        assert health.json()["directory"]["reason"] == "portal answered 500 INTERNAL_SERVER_ERROR"


def test_healthz_says_only_ok_without_the_api_key(client: TestClient) -> None:
    # The test client's peer is "testclient", not loopback: a stranger.
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        response = client.get("/healthz", headers=headers)
        assert (response.status_code, response.json()) == (200, {"ok": True})


def test_healthz_reports_the_directory_and_the_tabs(client: TestClient) -> None:
    with client.websocket_connect(f"/ws?token={token_for(RED_CALLER)}") as ws:
        ws.receive_json()
        body = client.get("/healthz", headers=AUTH).json()
    assert body["ok"] is True
    assert body["directory"]["source"] == "datafile"
    assert (body["tabs"], body["users"]) == (1, 1)


def test_metrics_expose_tabs_calls_decisions_and_latencies(client: TestClient) -> None:
    with client.websocket_connect(f"/ws?token={token_for(RED_CALLER)}") as ws:
        ws.receive_json()
        ws.send_json(call())
        ws.receive_json()
        response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for line in (
        "callguard_tabs 1.0",
        "callguard_users 1.0",
        "callguard_active_calls 1.0",
        'callguard_calls_total{source="ws"} 1.0',
        'callguard_decisions_total{colour="red"} 1.0',
        "callguard_lookup_seconds_count 1.0",
        "callguard_call_to_paint_seconds_count 1.0",
        "callguard_ring_to_applied_seconds_count 0.0",
        "callguard_loop_stall_max_seconds",
        "callguard_gc_pause_max_seconds",
    ):
        assert line in text


class TestApiCalls:
    body: ClassVar[dict[str, str]] = {"user_id": RED_CALLER, "phone": RED_PHONE, "call_id": "p1"}
    auth: ClassVar[dict[str, str]] = {"Authorization": f"Bearer {API_KEY}"}

    def test_it_is_off_until_an_api_key_is_set(self) -> None:
        with TestClient(create_app(gateway_settings())) as client:
            response = client.post("/api/calls", json=self.body, headers=self.auth)
        assert response.status_code == 503
        assert "CALLGUARD_API_KEY" in response.json()["message"]

    @pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {API_KEY}", API_KEY])
    def test_a_wrong_key_is_401(self, client: TestClient, header: str | None) -> None:
        headers = {"Authorization": header} if header else {}
        response = client.post("/api/calls", json=self.body, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"

    @pytest.mark.parametrize(
        ("body", "error", "mentions"),
        [
            (b"{nope", "invalid_json", "JSON"),
            (b"[]", "invalid_request", "object"),
            (b'{"phone":"1","call_id":"c"}', "invalid_request", "user_id"),
            (b'{"user_id":"x","phone":"1","call_id":"c"}', "invalid_request", "user_id"),
            (b'{"user_id":"08","phone":"1","call_id":"c"}', "invalid_request", "leading zeros"),
            (b'{"user_id":0,"phone":"1","call_id":"c"}', "invalid_request", "user_id"),
            (b'{"user_id":true,"phone":"1","call_id":"c"}', "invalid_request", "user_id"),
            (
                '{"user_id":"\uff18","phone":"1","call_id":"c"}'.encode(),
                "invalid_request",
                "ASCII digits",
            ),
            (b'{"user_id":7,"phone":"+74951234567"}', "invalid_request", "call_id"),
            (b'{"user_id":7,"call_id":"c"}', "invalid_request", "phone"),
            (
                b'{"user_id":7,"phone":"1","call_id":"c","direction":"x"}',
                "invalid_request",
                "direction",
            ),
            (b'{"user_id":7,"phone":"no","call_id":"c"}', "invalid_phone", ""),
        ],
    )
    def test_invalid_bodies_are_422(
        self, client: TestClient, body: bytes, error: str, mentions: str
    ) -> None:
        response = client.post("/api/calls", content=body, headers=self.auth)
        assert response.status_code == 422
        assert response.json()["error"] == error
        assert mentions in response.json()["message"]

    def test_a_too_large_body_is_413(self, client: TestClient) -> None:
        response = client.post("/api/calls", content=b" " * 20_000, headers=self.auth)
        assert response.status_code == 413

    def test_a_call_paints_the_users_tabs_and_answers_the_decision(
        self, client: TestClient
    ) -> None:
        with client.websocket_connect(f"/ws?token={token_for(RED_CALLER)}") as ws:
            ws.receive_json()
            response = client.post(
                "/api/calls",
                json={**self.body, "user_id": 7, "direction": "out"},
                headers=self.auth,
            )
            assert response.status_code == 200
            body = response.json()
            assert (body["status"], body["colour"], body["seq"]) == ("painted", "red", 1)
            paint = ws.receive_json()
            assert (paint["call_id"], paint["colour"]) == ("p1", "red")

    def test_each_answer_is_its_own_call_with_the_whole_decision(self, client: TestClient) -> None:
        """The decision's part of the answer is encoded once per decision (callapi.ANSWERS):
        calls that share a decision still answer their own call id and seq, and the decision
        whole, owner and subject included, as the rules give it."""
        gateway = client.app.state.gateway  # type: ignore[attr-defined]

        async def decided() -> dict[str, object]:
            findings = await gateway.directory.lookup(gateway.calls.normalize(RED_PHONE))
            return decide(findings, RED_CALLER, gateway.policy).to_dict()

        expected = client.portal.call(decided)  # type: ignore[union-attr]
        assert expected["owner"]  # the whole decision is under test
        assert expected["subject"]
        for call_id in ("a1", "a2", "a3"):
            body = {**self.body, "call_id": call_id}
            response = client.post("/api/calls", json=body, headers=self.auth)
            assert response.json() == {
                "call_id": call_id,
                "status": "painted",
                "seq": 1,
                **expected,
            }
        again = client.post("/api/calls", json={**self.body, "call_id": "a2"}, headers=self.auth)
        assert (again.json()["call_id"], again.json()["seq"]) == ("a2", 2)

    def test_every_answer_is_json_with_its_length_and_nosniff(self, client: TestClient) -> None:
        """The route is a plain ASGI handler (gateway/web/callapi.py): the headers the Starlette
        endpoint and the middleware gave, it gives itself."""
        good = client.post("/api/calls", json=self.body, headers=self.auth)
        bad = client.post("/api/calls", json=self.body)
        for response in (good, bad):
            assert response.headers["content-type"] == "application/json"
            assert response.headers["content-length"] == str(len(response.content))
            assert response.headers["x-content-type-options"] == "nosniff"
        assert (good.status_code, bad.status_code) == (200, 401)

    def test_other_methods_are_405_and_a_root_path_is_served(self) -> None:
        app = create_app(gateway_settings(api_key=API_KEY))
        with TestClient(app) as client:
            assert client.get("/api/calls").status_code == 405
        with TestClient(app, root_path="/gw") as mounted:
            response = mounted.post("/gw/api/calls", json=self.body, headers=self.auth)
            assert (response.status_code, response.json()["colour"]) == (200, "red")


def test_the_snippet_is_served_without_caching_and_cors_only_to_allowed_origins() -> None:
    settings = gateway_settings(portal_url="https://portal.example/rest/1/code/")
    with TestClient(create_app(settings)) as client:
        response = client.get("/static/callguard.js")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/javascript")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "access-control-allow-origin" not in response.headers  # no Origin: no CORS
        portal = client.get("/static/callguard.js", headers={"Origin": "https://portal.example"})
        assert portal.headers["access-control-allow-origin"] == "https://portal.example"
        assert portal.headers["vary"] == "Origin"
        other = client.get("/static/callguard.js", headers={"Origin": "https://evil.example"})
        assert other.status_code == 200  # a <script src> needs no CORS; a fetch() gets none
        assert "access-control-allow-origin" not in other.headers
        text = client.get("/metrics").text
        assert 'callguard_origins_refused_total{path="static"} 1.0' in text


def test_serve_does_not_expose_the_demo_assets(client: TestClient) -> None:
    for path in ("/static/demo/demo.js", "/static/demo/index.html", "/static/demo/", "/demo/"):
        assert client.get(path).status_code == 404, path
    with TestClient(create_app(gateway_settings(demo=True))) as demo:
        assert demo.get("/static/demo/demo.js").status_code == 404
        assert demo.get("/demo/demo.js").status_code == 200
        assert demo.get("/demo/demo.css").status_code == 200


def test_html_pages_get_nosniff_and_a_policy_framed_only_by_the_portal() -> None:
    settings = gateway_settings(demo=True, portal_url="https://portal.example/rest/1/code/")
    with TestClient(create_app(settings)) as demo:
        page = demo.get("/demo/")
    assert page.headers["x-content-type-options"] == "nosniff"
    directives = page.headers["content-security-policy"].split("; ")
    policy = {name: value for name, _, value in (d.partition(" ") for d in directives)}
    assert policy["frame-ancestors"] == "'self' https://portal.example"
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    # Where content may come from: this gateway only (a loopback relay for the demo's ?ws=).
    sources = " ".join(v for k, v in policy.items() if k != "frame-ancestors").split()
    assert all(s.startswith(("'", "data:", "ws://127.0.0.1:", "ws://localhost:")) for s in sources)
    assert not {"https:", "http:", "*"} & set(sources)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # not a browser page: the load tester, curl
        ("https://portal.example", True),
        ("https://PORTAL.example:443", True),
        ("http://testserver", True),  # the gateway's own pages
        ("https://evil.example", False),
        ("https://portal.example.evil.example", False),
        ("null", False),
    ],
)
def test_a_websocket_from_a_page_origin_not_allowed_is_refused_403(
    origin: str | None, allowed: bool
) -> None:
    settings = gateway_settings(portal_url="https://portal.example/rest/1/code/")
    headers = {"Origin": origin} if origin else {}
    with TestClient(create_app(settings)) as client:
        if allowed:
            with client.websocket_connect(url_7(), headers=headers) as ws:
                assert ws.receive_json()["type"] == "hello"
        else:
            with (
                pytest.raises(WebSocketDenialResponse) as refused,
                client.websocket_connect(url_7(), headers=headers),
            ):
                pass
            assert refused.value.status_code == 403
            assert refused.value.json()["error"] == "origin_not_allowed"
            text = client.get("/metrics").text
            assert 'callguard_origins_refused_total{path="ws"} 1.0' in text


def test_allowed_origins_replace_the_default() -> None:
    settings = gateway_settings(
        portal_url="https://portal.example/rest/1/code/",
        allowed_origins=("https://crm.example:8443",),
    )
    with TestClient(create_app(settings)) as client:
        with client.websocket_connect(
            url_7(), headers={"Origin": "https://crm.example:8443"}
        ) as ws:
            assert ws.receive_json()["type"] == "hello"
        with (
            pytest.raises(WebSocketDenialResponse),
            client.websocket_connect(url_7(), headers={"Origin": "https://portal.example"}),
        ):
            pass


def test_demo_routes_exist_only_in_demo_mode(client: TestClient) -> None:
    assert client.get("/demo/api/users").status_code == 404
    assert client.get("/demo/api/token?user=6").status_code == 404
    with TestClient(create_app(gateway_settings(demo=True))) as demo:
        page = demo.get("/demo/")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        listing = demo.get("/demo/api/users").json()
        anna = next(u for u in listing["users"] if u["id"] == "6")
        assert anna == {"id": "6", "name": "Анна Смирнова", "departments": ["Продажи: Москва"]}
        assert {
            "phone": "+7 (495) 123-45-67",
            "label": "ООО «Ромашка» — company, IN_WORK, Анна Смирнова",
        } in listing["numbers"]
        romashka = next(c for c in listing["companies"] if c["id"] == "10")
        assert romashka == {
            "id": "10",
            "title": "ООО «Ромашка»",
            "status": "IN_WORK",
            "assigned_by": "6",
            "assigned_name": "Анна Смирнова",
            "phones": ["+7 (495) 123-45-67"],
        }
        assert listing["statuses"][0] == {
            "code": "PENDING",
            "name": "В ожидании",
            "name_en": "Pending",
        }
        issued = demo.get("/demo/api/token?user=6").json()
        assert issued["user_id"] == "6"
        with demo.websocket_connect(f"/ws?token={issued['token']}") as ws:
            assert ws.receive_json()["user_id"] == "6"
        missing = demo.get("/demo/api/token?user=999")
        assert missing.status_code == 404
        assert missing.json()["error"] == "unknown_user"


def test_data_file_statuses_must_be_in_the_rules_file() -> None:
    data = parse_dataset(
        {"companies": [{"id": 1, "title": "X", "assigned_by": 1, "status": "VIP"}]}, "x.json"
    )
    with pytest.raises(ConfigError, match=r"^CALLGUARD_DIRECTORY: companies 1 in x.json .* VIP"):
        create_app(Settings(secret=TEST_SECRET), DataFileDirectory(data))


def test_a_bad_rules_file_names_the_variable(tmp_path: object) -> None:
    from pathlib import Path

    rules = Path(str(tmp_path)) / "rules.toml"
    rules.write_text("version = 1\n[colours]\nred = 'nope'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^CALLGUARD_RULES: "):
        create_app(Settings(secret=TEST_SECRET, rules=rules))
