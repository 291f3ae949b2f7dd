"""Logs of real ``callguard serve`` / ``demo`` processes: every stderr line one JSON object under
``CALLGUARD_LOG_FORMAT=json``, status decisions on one INFO line, and nothing secret anywhere."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from gateway.live.tokens import issue_token
from gateway.run.config import Settings
from gateway.run.logs import JsonFormatter, Redactor, TextFormatter, settings_secrets
from tests.processes import callguard, free_port, on_busy_port
from tests.timing import timeout

SECRET = "logs-test-secret-0123456789abcdef-0123"
API_KEY = "logs-test-api-key-0123456789"
APP_TOKEN = "logs-test-application-token-42"
HOOK_CODE = "hook0secret0code0777"
PHONES = ("+7 (495) 123-45-67", "+7 916 000-11-22")


def json_lines(lines: list[str]) -> list[dict[str, str]]:
    parsed = [json.loads(line) for line in lines]
    for doc in parsed:
        assert isinstance(doc, dict)
        assert {"ts", "level", "logger", "msg"} <= doc.keys(), doc
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["ts"])
    return parsed


def test_a_call_and_a_tab_leave_no_token_key_code_or_full_phone_in_the_json_log() -> None:
    """REST mode against a portal that is down, so lookups fail and are logged with the phone."""
    dead_portal = f"http://127.0.0.1:{free_port()}/rest/1/{HOOK_CODE}/"
    env = {
        "CALLGUARD_SECRET": SECRET,
        "CALLGUARD_API_KEY": API_KEY,
        "CALLGUARD_WEBHOOK_TOKEN": APP_TOKEN,
        "CALLGUARD_PORTAL_URL": dead_portal,
        "CALLGUARD_LOG_FORMAT": "json",
        "CALLGUARD_LOG_LEVEL": "debug",
        "CALLGUARD_LOOKUP_DEADLINE": "1",
    }
    token = issue_token(SECRET, "7", 600)
    with callguard("serve", env=env) as gw:
        ws_url = f"ws://127.0.0.1:{gw.port}/ws?token={token}"
        with connect(ws_url, origin=Origin(gw.base), open_timeout=timeout()) as ws:
            assert json.loads(ws.recv(timeout()))["type"] == "hello"
            ws.send(json.dumps({"type": "call", "call_id": "c1", "phone": PHONES[0]}))
            paint = json.loads(ws.recv(timeout(2)))
            assert (paint["type"], paint["colour"]) == ("paint", "none")  # the CRM is down
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url, origin=Origin("https://evil.example"), open_timeout=timeout())
        assert refused.value.response.status_code == 403
        with httpx.Client(base_url=gw.base, timeout=timeout(2)) as http:
            call = {"user_id": 7, "call_id": "a1", "phone": PHONES[1]}
            answer = http.post(
                "/api/calls", json=call, headers={"Authorization": f"Bearer {API_KEY}"}
            )
            assert answer.json()["colour"] == "none"
            wrong = http.post(
                f"/bitrix/events?token={token}",
                content=f"event=ONCRMCOMPANYUPDATE&auth[application_token]={token}",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert wrong.status_code == 401
    logged = json_lines(gw.stderr)
    text = "\n".join(gw.stderr)
    for secret in (SECRET, API_KEY, APP_TOKEN, HOOK_CODE, token, dead_portal):
        assert secret not in text
    for phone in PHONES:
        digits = re.sub(r"\D", "", phone)
        assert phone not in text
        assert digits not in re.sub(r"[^\d\n]", "", text)
    by = {(d["logger"], d["level"]) for d in logged}
    assert not [d for d in logged if d["level"] in ("ERROR", "CRITICAL")]
    # The lines that would have held them are there, masked: the net is tested, not the silence.
    assert ("uvicorn.error", "INFO") in by
    accepted = [d["msg"] for d in logged if "[accepted]" in d["msg"]]
    assert accepted
    assert all("/ws?token=***" in m for m in accepted)
    lookups = [
        d["msg"] for d in logged if d["logger"].startswith("callguard.") and "lookup" in d["msg"]
    ]
    assert any("****4567" in m for m in lookups)
    # The second failed lookup (****1122) came within 10 s of the first: counted, not logged.
    assert len([m for m in lookups if "failed, painting none" in m]) == 1
    assert any(d["logger"] == "callguard.origins" and "evil.example" in d["msg"] for d in logged)
    assert any(d["logger"] == "callguard.webhooks" for d in logged)


def test_a_status_decision_is_one_info_line_naming_company_and_user() -> None:
    env = {"CALLGUARD_LOG_FORMAT": "json"}
    with callguard("demo", env=env) as demo, httpx.Client(base_url=demo.base) as http:
        for user in ("6", "4"):  # the responsible manager (reverted), her head (approved)
            body = {"company_id": "10", "status": "PENDING", "as_user": user}
            outcome = http.post("/demo/api/company-status", json=body, timeout=timeout())
            assert outcome.status_code == 200
    judged = [
        d
        for d in json_lines(demo.stderr)
        if d["logger"] == "callguard.statuses" and "->" in d["msg"]
    ]
    assert [d["level"] for d in judged] == ["INFO", "INFO"]
    reverted, approved = (d["msg"] for d in judged)
    assert "company 10 'ООО «Ромашка»'" in reverted
    assert "by user 6 reverted" in reverted
    assert "by user 4 approved" in approved


def test_a_start_up_failure_is_json_too_and_exits_2() -> None:
    done, port = on_busy_port("serve", "--insecure-dev", env={"CALLGUARD_LOG_FORMAT": "json"})
    assert done.returncode == 2
    logged = json_lines(done.stderr.splitlines())
    assert logged[0]["logger"] == "callguard.launch"
    assert "--insecure-dev" in logged[0]["msg"]
    assert logged[-1] == {**logged[-1], "level": "ERROR", "logger": "callguard.launch"}
    assert f"could not start serving on 127.0.0.1:{port}" in logged[-1]["msg"]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("lookup of +7 (916) 000-11-22 failed", "lookup of ****1122 failed"),
        ("lookup of 89160001122.", "lookup of ****1122."),
        (
            '127.0.0.1:5 - "WebSocket /ws?token=abc.def" [accepted]',
            '127.0.0.1:5 - "WebSocket /ws?token=***" [accepted]',
        ),
        ("GET /x?a=1&api_key=zzz&b=2", "GET /x?a=1&api_key=***&b=2"),
        ("auth[application_token]=qwerty&x", "auth[application_token]=***&x"),
        ("Authorization: Bearer abc123", "Authorization: Bearer ***"),
        ("https://p.example/rest/1/abcdef/crm.x", "https://p.example/rest/1/***/crm.x"),
        ("redis://user:pa55@redis:6379/0", "redis://***@redis:6379/0"),
        ("token eyJhbGciOi.eyJzdWIiOiI3In0.c2lnbmF0dXJl end", "token *** end"),
        ("the configured s3cr3t-value leaked", "the configured *** leaked"),
        # Not phones: ids, versions, times, addresses, counts.
        ("call 123456 of user 7 at 12:30:45", "call 123456 of user 7 at 12:30:45"),
        (
            "froze 57937 objects; took 1733123456.25 s on 10.0.0.1:8000",
            "froze 57937 objects; took 1733123456.25 s on 10.0.0.1:8000",
        ),
        ("callId externalCall.9f2b1234567e8", "callId externalCall.9f2b1234567e8"),
    ],
)
def test_the_redactor_masks_secrets_and_phones_only(text: str, masked: str) -> None:
    assert Redactor(["s3cr3t-value"])(text) == masked


def test_formatters_mask_the_message_and_the_traceback() -> None:
    settings = Settings(
        secret="x" * 32, api_key="key-123456", portal_url="https://p.example/rest/1/code777/"
    )
    redact = Redactor(settings_secrets(settings))
    try:
        raise RuntimeError("failed with key-123456 for +79160001122")
    except RuntimeError as err:
        record = logging.LogRecord(
            "callguard.x",
            logging.WARNING,
            __file__,
            1,
            "got %s",
            ("code777",),
            (type(err), err, err.__traceback__),
        )
    doc = json.loads(JsonFormatter(redact).format(record))
    assert doc["msg"] == "got ***"
    assert "key-123456" not in doc["exc"]
    assert "****1122" in doc["exc"]
    line = TextFormatter(redact).format(record)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING callguard.x: got \*\*\*\n", line)
