"""A real gateway process driven from async tests (signals, several processes): ``callguard serve``
on a free loopback port, its stderr kept for the test to read once it has exited. The synchronous
runner with stderr read line by line is :mod:`tests.processes`; both start from its clean
environment and free port."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx

from tests.processes import ROOT, clean_env, free_port
from tests.timing import timeout


class ServeProcess:
    """``python -m gateway serve`` with ``env`` (plus host and port) over a clean environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        clean = clean_env({**env, "CALLGUARD_HOST": "127.0.0.1", "PORT": str(self.port)})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"],
            cwd=ROOT,
            env=clean,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        """Wait until the process answers HTTP (it listens only once its start-up is done)."""
        try:
            async with asyncio.timeout(timeout(4)), httpx.AsyncClient() as client:
                while self.proc.poll() is None:
                    try:
                        await client.get(self.url + "/healthz")
                        return
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
        except TimeoutError:
            self.proc.kill()
        raise AssertionError(f"the gateway did not start: {self.proc.communicate()[1]}")

    async def refusing(self) -> None:
        """Wait until the port refuses new connections (the process stopped accepting)."""
        async with asyncio.timeout(timeout(2)):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    return
                writer.close()
                await asyncio.sleep(0.02)

    async def exited(self) -> int:
        """Wait for the process to end; its exit code (stderr is in :attr:`stderr`)."""
        loop = asyncio.get_running_loop()
        _, self.stderr = await loop.run_in_executor(
            None, lambda: self.proc.communicate(timeout=timeout(2))
        )
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@contextlib.asynccontextmanager
async def serving(env: dict[str, str]) -> AsyncIterator[ServeProcess]:
    """A :class:`ServeProcess` that answers HTTP; killed, if still running, when the block ends."""
    gateway = ServeProcess(env)
    try:
        await gateway.ready()
        yield gateway
    finally:
        gateway.kill()
