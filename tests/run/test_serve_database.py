"""`callguard serve` and its database, as real processes: the embedded file is created in the
state directory on first start; an unreachable database stops start-up with one line."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.crm.test_serve_over_rest import wait_healthy
from tests.run.test_commands import ROOT, free_port
from tests.timing import timeout


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGUARD_")}
    env.update(extra)
    return env


def test_an_unreachable_database_stops_serve_with_one_line() -> None:
    url = "postgresql://callguard:s3cret-pw@127.0.0.1:9/callguard"  # nothing listens on 9
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--insecure-dev", "--port", str(free_port())],
        cwd=ROOT,
        env=_env(CALLGUARD_DATABASE_URL=url, CALLGUARD_DATABASE_TIMEOUT="2"),
        capture_output=True,
        text=True,
        timeout=timeout(2),
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if not line.startswith("WARNING:")]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        "callguard serve: CALLGUARD_DATABASE_URL: cannot open the database "
        "postgresql://callguard:***@127.0.0.1:9/callguard: "
    )
    assert "s3cret-pw" not in done.stderr


async def test_serve_creates_its_database_in_the_state_directory(tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "gateway", "serve", "--insecure-dev", "--port", str(port)),
        cwd=ROOT,
        env=_env(XDG_STATE_HOME=str(tmp_path / "xdg")),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_healthy(f"127.0.0.1:{port}")
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(timeout()):
            _, err = await proc.communicate()
    assert b"Traceback" not in err
    file = tmp_path / "xdg" / "callguard" / "callguard.sqlite3"
    assert file.read_bytes().startswith(b"SQLite format 3\x00")
