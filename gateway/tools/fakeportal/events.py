"""Outgoing webhooks: the fake portal POSTs events to subscribed handlers (reference §2).

Bodies are ``application/x-www-form-urlencoded`` with PHP bracket keys, exactly the keys of an
outgoing webhook: ``event``, ``event_handler_id``, ``data[...]``, ``ts`` and ``auth[domain]``,
``auth[client_endpoint]``, ``auth[server_endpoint]``, ``auth[member_id]``,
``auth[application_token]`` (no OAuth tokens). Like Bitrix, there are no retries: a failed delivery
is recorded and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gateway.crm.forms import encode_form
from gateway.tools.fakeportal.faults import Recorder

log = logging.getLogger("callguard.fakeportal")
MEMBER_ID = "d897063e1ce7c5eb9f04b9751eef5915"


@dataclass(slots=True)
class Subscription:
    id: str
    handler: str
    application_token: str
    events: frozenset[str]


@dataclass(slots=True)
class Delivery:
    """One POST to a handler: ``status`` is the handler's HTTP status, or None if it failed."""

    event: str
    handler: str
    body: str
    status: int | None
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class Events:
    def __init__(self, domain: str, client_endpoint: str) -> None:
        self.domain = domain
        self.client_endpoint = client_endpoint
        self.subscriptions: list[Subscription] = []
        self.deliveries: Recorder[Delivery] = Recorder()
        self._next_id = 975
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def subscribe(self, handler: str, application_token: str, events: list[str]) -> str:
        self._next_id += 1
        sub = Subscription(
            str(self._next_id), handler, application_token, frozenset(e.upper() for e in events)
        )
        self.subscriptions.append(sub)
        return sub.id

    def unsubscribe(self, handler: str) -> None:
        self.subscriptions = [s for s in self.subscriptions if s.handler != handler]

    def body(self, sub: Subscription, event: str, data: dict[str, Any]) -> str:
        return encode_form(
            {
                "event": event,
                "event_handler_id": sub.id,
                "data": data,
                "ts": str(int(time.time())),
                "auth": {
                    "domain": self.domain,
                    "client_endpoint": self.client_endpoint,
                    "server_endpoint": "https://oauth.bitrix.info/rest/",
                    "member_id": MEMBER_ID,
                    "application_token": sub.application_token,
                },
            }
        )

    def emit(self, event: str, data: dict[str, Any]) -> int:
        """Queue ``event`` for every subscriber; returns how many deliveries were queued.

        Needs a running event loop (deliveries are background tasks, as Bitrix's queue is)."""
        event = event.upper()
        targets = [s for s in self.subscriptions if event in s.events]
        for sub in targets:
            task = asyncio.get_running_loop().create_task(self._deliver(sub, event, data))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(targets)

    async def _deliver(self, sub: Subscription, event: str, data: dict[str, Any]) -> None:
        body = self.body(sub, event, data)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        try:
            async with self._session.post(sub.handler, data=body, headers=headers) as resp:
                await resp.read()
                record = Delivery(event, sub.handler, body, resp.status, data=data)
        except (aiohttp.ClientError, TimeoutError) as err:
            log.warning("event %s to %s failed: %s", event, sub.handler, err)
            record = Delivery(event, sub.handler, body, None, str(err) or type(err).__name__, data)
        self.deliveries.append(record)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
