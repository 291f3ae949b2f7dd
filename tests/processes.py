"""Real ``callguard serve`` / ``demo`` processes for tests, their stderr kept line by line::

    with callguard("serve", "--insecure-dev", env={"CALLGUARD_LOG_FORMAT": "json"}) as gw:
        httpx.get(f"{gw.base}/healthz")
    assert all(json.loads(line) for line in gw.stderr)   # after exit: the whole of stderr

Ready means uvicorn said it is listening (its "Uvicorn running on" line); stopping is SIGINT
and a wait, so every line the process wrote is in ``stderr`` once the block is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.timing import timeout

ROOT = Path(__file__).resolve().parents[1]
READY = "Uvicorn running on"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without any CALLGUARD_* or PORT, plus ``env``."""
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CALLGUARD_") and k not in ("PORT", "PYTHONPATH")
    }
    return {**kept, **(env or {})}


def on_busy_port(
    *args: str, env: Mapping[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``callguard ARGS --host 127.0.0.1 --port P`` where P is taken: it must exit."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = int(busy.getsockname()[1])
        done = subprocess.run(
            [sys.executable, "-m", "gateway", *args, "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=clean_env(env),
            capture_output=True,
            text=True,
            timeout=timeout(2),
        )
    return done, port


@dataclass
class Served:
    port: int
    proc: subprocess.Popen[str]
    stderr: list[str] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def read(self, stream: Iterator[str], into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))
            if READY in line:
                self.ready.set()


@contextlib.contextmanager
def callguard(
    *args: str,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] = (sys.executable, "-m", "gateway"),
    cwd: Path = ROOT,
) -> Iterator[Served]:
    """Run ``callguard ARGS --host 127.0.0.1 --port FREE`` with only ``env``'s CALLGUARD_*."""
    port = free_port()
    proc = subprocess.Popen(
        [*command, *args, "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env=clean_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(port, proc)
    assert proc.stderr is not None
    assert proc.stdout is not None
    readers = [
        threading.Thread(target=served.read, args=(proc.stderr, served.stderr), daemon=True),
        threading.Thread(target=served.read, args=(proc.stdout, served.stdout), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        if not served.ready.wait(timeout(3)):
            raise AssertionError(f"callguard {args} did not start: {served.stderr}")
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout(2))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(timeout(1))
        proc.stdout.close()
        proc.stderr.close()
