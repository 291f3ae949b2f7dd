"""`callguard serve`, `demo` and `token`: configuration errors, tokens, and a real demo process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gateway.cli import main
from gateway.live.tokens import TokenError, verify_token
from tests.processes import callguard, on_busy_port
from tests.timing import timeout

SECRET = "cli-test-secret-0123456789abcdef-0123"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CALLGUARD_") or name == "PORT":
            monkeypatch.delenv(name)


def test_serve_without_a_secret_exits_2_naming_the_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("callguard serve: CALLGUARD_SECRET: not set")
    assert "\n" not in err


def test_serve_with_an_invalid_setting_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLGUARD_LOOKUP_DEADLINE", "soon")
    assert main(["serve", "--insecure-dev"]) == 2
    assert capsys.readouterr().err.startswith("callguard serve: CALLGUARD_LOOKUP_DEADLINE: ")


def test_token_prints_a_token_for_the_user(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLGUARD_SECRET", SECRET)
    assert main(["token", "--user", "6", "--ttl", "60"]) == 0
    assert verify_token(SECRET, capsys.readouterr().out.strip()) == "6"


def test_token_needs_a_secret_and_a_user_id(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "--user", "6"]) == 2
    assert "CALLGUARD_SECRET" in capsys.readouterr().err
    monkeypatch.setenv("CALLGUARD_SECRET", SECRET)
    assert main(["token", "--user", "anna"]) == 2
    assert "user id" in capsys.readouterr().err
    for user in ("06", "６", "0"):
        assert main(["token", "--user", user]) == 2
        assert "without leading zeros" in capsys.readouterr().err


def test_token_refuses_a_lifetime_the_gateway_would_refuse(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLGUARD_SECRET", SECRET)
    assert main(["token", "--user", "6", "--ttl", str(24 * 3600 + 1)]) == 2
    assert "CALLGUARD_TOKEN_MAX_TTL" in capsys.readouterr().err
    monkeypatch.setenv("CALLGUARD_TOKEN_MAX_TTL", str(48 * 3600))
    assert main(["token", "--user", "6", "--ttl", str(24 * 3600 + 1)]) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_serves_the_demo_and_prints_the_url() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGUARD_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == f"Callguard demo: open http://127.0.0.1:{port}/demo/"
        users = httpx.get(f"http://127.0.0.1:{port}/demo/api/users", timeout=timeout())
        assert users.status_code == 200
        assert any(u["name"] == "Анна Смирнова" for u in users.json()["users"])
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=timeout())
    assert proc.returncode in (0, 130)
    assert "Traceback" not in err


def test_serve_insecure_dev_warns_loudly_and_a_busy_port_exits_2() -> None:
    done, port = on_busy_port("serve", "--insecure-dev")
    assert done.returncode == 2
    assert "WARNING: --insecure-dev" in done.stderr
    assert f"callguard serve: could not start serving on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_demo_never_signs_with_the_secret_and_serve_hands_out_no_tokens() -> None:
    env = {"CALLGUARD_SECRET": SECRET}
    with (
        callguard("demo", env=env) as demo,
        callguard("serve", env=env) as gw,
        httpx.Client(timeout=timeout()) as http,
    ):
        issued = http.get(f"{demo.base}/demo/api/token?user=6").json()["token"]
        with pytest.raises(TokenError):
            verify_token(SECRET, issued)
        with connect(f"ws://127.0.0.1:{demo.port}/ws?token={issued}") as ws:
            assert json.loads(ws.recv(timeout()))["user_id"] == "6"
        # The production gateway sharing the variable neither issues tokens nor takes the demo's.
        assert http.get(f"{gw.base}/demo/api/token?user=6").status_code == 404
        assert http.get(f"{gw.base}/demo/api/users").status_code == 404
        assert close_code(f"ws://127.0.0.1:{gw.port}/ws?token={issued}") == 4401
        # A restarted demo is another secret: yesterday's demo tokens open nothing.
        with callguard("demo", env=env) as again:
            assert close_code(f"ws://127.0.0.1:{again.port}/ws?token={issued}") == 4401


def close_code(url: str) -> int:
    with connect(url, open_timeout=timeout()) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout())
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code
