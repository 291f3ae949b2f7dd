"""Fixtures for the gateway tests: settings, tokens, and real Directory implementations that
hang or fail (test doubles are real classes, never patched internals)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
import uvloop
from starlette.testclient import TestClient

from gateway.crm import DirectoryError
from gateway.live.tokens import issue_token
from gateway.run.config import Settings
from gateway.web.app import create_app
from rules.model import Findings
from tests.support import TEST_SECRET, gateway_settings

API_KEY = "test-api-key-0123456789"
# Demo data (gateway/crm/demo.json): a company IN_WORK whose manager is user 6, so
# user 7 calling it is red; user 6 is the responsible manager.
RED_PHONE = "+7 (495) 123-45-67"
RED_CALLER = "7"
OWNER = "6"


def token_for(user_id: str, ttl: float = 600.0) -> str:
    return issue_token(TEST_SECRET, user_id, ttl)


@pytest.fixture
def settings() -> Settings:
    return gateway_settings(api_key=API_KEY, heartbeat=2.0)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


class SourceDouble:
    """What every test directory declares: no data file, no portal, nothing to refresh."""

    dataset = None
    rest = None

    def held(self, phone: str) -> Findings | None:
        return None

    async def changed(self, kind: str, entity_id: str, deleted: bool) -> set[str]:
        return set()


class HangingDirectory(SourceDouble):
    """A CRM that answers only when released (or never): for deadlines and fail-open."""

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0
        self.ok = True
        self._events: dict[str, asyncio.Event] = {}

    def event(self, name: str) -> asyncio.Event:
        """``gate``, ``started`` or ``finished``, made on the loop that uses it."""
        return self._events.setdefault(name, asyncio.Event())

    def release(self) -> None:
        self.event("gate").set()

    async def lookup(self, phone: str) -> Findings:
        self.started += 1
        self.event("started").set()
        await self.event("gate").wait()
        self.finished += 1
        self.event("finished").set()
        return Findings(phone=phone)

    def health(self) -> dict[str, object]:
        return {"ok": self.ok, "source": "hanging", "reason": None if self.ok else "CRM hangs"}

    async def close(self) -> None:
        return None


class FailingDirectory(SourceDouble):
    """A CRM that always fails the way a real one does: with a DirectoryError."""

    def __init__(self, message: str = "portal answered 500 INTERNAL_SERVER_ERROR") -> None:
        self.message = message
        self.calls = 0

    async def lookup(self, phone: str) -> Findings:
        self.calls += 1
        await asyncio.sleep(0)
        raise DirectoryError(self.message)

    def health(self) -> dict[str, object]:
        return {"ok": False, "source": "failing", "reason": self.message}

    async def close(self) -> None:
        return None


# Production runs on uvloop (uvicorn picks it when installed), whose transports are not
# asyncio.Transport subclasses: modules that drive our own asyncio protocols on the client side
# run on both loops, the others on asyncio's alone (pytest-asyncio wants a loop for every test
# once this hook exists).
BOTH_LOOPS = {"tests.live.test_fanout_redis", "tests.live.test_resp"}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    module = getattr(item, "module", None)
    if module is not None and module.__name__ in BOTH_LOOPS:
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
