"""``POST /bitrix/events``: the outgoing webhook, answered at once, worked on in the background.

Order of checks: no ``CALLGUARD_WEBHOOK_TOKEN`` -> 503; body over the bound -> 413; not a form ->
400; ``auth[application_token]`` missing or wrong -> 401 (one log line, nothing done); a known
event with bad data -> 400; an event we do not handle -> 200, ignored; otherwise 200 and the event
is queued. Parsing is pure (gateway/portal/events.py); the work runs in two bounded queues:

- telephony events in one ordered worker, so a call's init, start and end are applied in the order
  the portal sent them;
- CRM events in several workers (each may make a few REST calls); the status guard serialises
  events about one company itself.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from starlette.requests import Request
from starlette.responses import Response

from gateway.crm import DirectoryError
from gateway.live.calls import CallEvent, Calls
from gateway.live.wire import Direction
from gateway.portal import events
from gateway.portal.events import CallEnd, CallInit, CallStart, CrmChange, PortalEvent, Unknown
from gateway.portal.queues import WorkQueue
from gateway.portal.statuses import Outcome, StatusGuard
from gateway.store.database import DatabaseError
from gateway.web.responses import failure, json_response
from rules.phones import InvalidPhone

log = logging.getLogger("callguard.webhooks")

QUEUE_SIZE = 1000  # per queue; far above what a portal sends while a worker is busy
CRM_WORKERS = 4
REMEMBERED_CALLS = 10_000

# (kind, entity id, deleted) -> the phone keys whose cached lookups were dropped.
Refresh = Callable[[str, str, bool], Awaitable[set[str]]]


@dataclass(slots=True)
class _Ring:
    phone: str | None = None  # the E.164 key, normalised once at CALLINIT
    direction: str = "in"
    waiting_user: str | None = None  # a CALLSTART that came before its CALLINIT
    ended: bool = False


class CallMemory:
    """What the telephony events tell about each call id, bounded (oldest calls forgotten first).

    CALLSTART carries only the call id and the user; the number came with CALLINIT. The portal's
    queue does not promise order, so a start that arrives first waits here for its init, and an
    end marks the call so a late start does not paint a finished call.
    """

    def __init__(self, capacity: int = REMEMBERED_CALLS) -> None:
        self.capacity = capacity
        self._rings: OrderedDict[str, _Ring] = OrderedDict()

    def ring(self, call_id: str) -> _Ring:
        ring = self._rings.get(call_id)
        if ring is None:
            ring = self._rings[call_id] = _Ring()
            while len(self._rings) > self.capacity:
                self._rings.popitem(last=False)
        return ring

    def __len__(self) -> int:
        return len(self._rings)


class PortalMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "callguard_portal_events",
            "Portal webhook requests by event and outcome",
            ["event", "outcome"],
            registry=registry,
        )
        self.statuses = Counter(
            "callguard_status_changes",
            "Company status changes judged by the status guard, by action",
            ["action"],
            registry=registry,
        )


class EventIntake:
    """The portal's events, wired to the call pipeline, the lookup cache and the status guard."""

    def __init__(
        self,
        webhook_token: str | None,
        calls: Calls,
        registry: CollectorRegistry,
        *,
        refresh: Refresh | None = None,
        guard: StatusGuard | None = None,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.webhook_token = webhook_token
        self.calls = calls
        self.refresh = refresh
        self.guard = guard
        self.memory = CallMemory()
        self.metrics = PortalMetrics(registry)
        self.telephony: WorkQueue[PortalEvent] = WorkQueue(
            "portal-telephony", self._telephony, queue_size, workers=1
        )
        self.crm: WorkQueue[CrmChange] = WorkQueue("portal-crm", self._crm, queue_size, CRM_WORKERS)

    async def start(self) -> None:
        self.telephony.start()
        self.crm.start()

    async def stop(self) -> None:
        await self.telephony.stop()
        await self.crm.stop()
        if self.guard is not None:
            await self.guard.store.close()

    async def idle(self) -> None:
        """Wait until every accepted event has been handled (tests, graceful shutdown)."""
        await self.telephony.join()
        await self.crm.join()

    # -- the endpoint ------------------------------------------------------------------------

    async def receive(self, request: Request) -> Response:
        if not self.webhook_token:
            return failure(
                503,
                "webhook_disabled",
                "POST /bitrix/events is off: set CALLGUARD_WEBHOOK_TOKEN to the outgoing "
                "webhook's application token",
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > events.MAX_BODY:
            return self._refuse(413, "too_large", f"body larger than {events.MAX_BODY} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > events.MAX_BODY:
                return self._refuse(413, "too_large", f"body larger than {events.MAX_BODY} bytes")
        try:
            form = events.parse_form(bytes(body))
        except events.MalformedBody as err:
            return self._refuse(400, "malformed", str(err))
        try:
            events.check_token(form, self.webhook_token)
        except events.BadToken as err:
            client = request.client.host if request.client else "?"
            log.warning("portal event refused from %s: %s", client, err)
            self.metrics.events.labels("-", "bad_token").inc()
            return failure(401, "bad_token", str(err))
        try:
            event = events.parse_event(form)
        except events.MalformedBody as err:
            return self._refuse(400, "malformed", str(err))
        name = events.event_name(form)
        if isinstance(event, Unknown):
            self.metrics.events.labels("other", "ignored").inc()
            return json_response({"ok": True, "ignored": event.name})
        queued = (
            self.crm.offer(event) if isinstance(event, CrmChange) else self.telephony.offer(event)
        )
        if not queued:
            log.warning("portal event %s dropped: the queue is full", name)
            self.metrics.events.labels(name, "dropped").inc()
            return failure(503, "busy", "event queue full, event dropped")
        self.metrics.events.labels(name, "accepted").inc()
        return json_response({"ok": True})

    def _refuse(self, status: int, code: str, message: str) -> Response:
        log.info("portal event refused: %s", message)
        self.metrics.events.labels("-", code).inc()
        return failure(status, code, message)

    # -- telephony ---------------------------------------------------------------------------

    async def _telephony(self, event: PortalEvent) -> None:
        if isinstance(event, CallInit):
            await self._call_init(event)
        elif isinstance(event, CallStart):
            ring = self.memory.ring(event.call_id)
            if ring.ended:
                return
            if ring.phone is None:
                ring.waiting_user = event.user_id
                return
            await self._paint(event.user_id, event.call_id, ring)
        elif isinstance(event, CallEnd):
            ring = self.memory.ring(event.call_id)
            ring.ended = True
            ring.waiting_user = None
            await self.calls.end_call(event.user_id, event.call_id)

    async def _call_init(self, event: CallInit) -> None:
        try:
            key = self.calls.prewarm(event.phone)
        except InvalidPhone as err:
            log.info("call %s: not pre-warming: %s", event.call_id, err)
            return
        ring = self.memory.ring(event.call_id)
        ring.phone, ring.direction = key, event.direction
        if ring.waiting_user is not None and not ring.ended:
            user, ring.waiting_user = ring.waiting_user, None
            await self._paint(user, event.call_id, ring)

    async def _paint(self, user_id: str, call_id: str, ring: _Ring) -> None:
        assert ring.phone is not None
        direction: Direction = "out" if ring.direction == "out" else "in"
        # ring.phone is the key CallInit normalised: the call is not normalised again.
        event = CallEvent(user_id, call_id, ring.phone, direction, "portal", time.perf_counter())
        await self.calls.begin(event, only_if_unpainted=True)

    # -- CRM ---------------------------------------------------------------------------------

    async def _crm(self, event: CrmChange) -> None:
        deleted = event.action == "delete"
        if event.kind == "company" and self.guard is not None:
            try:
                if deleted:
                    await self.guard.on_delete(event.entity_id)
                else:
                    self.judged(await self.guard.on_change(event.entity_id, event.action == "add"))
            except (DirectoryError, DatabaseError) as err:
                # The portal or the database failed, or the portal is not set up: one line, the
                # status stays as it is, and the cache is refreshed anyway.
                log.warning("company %s: status not checked: %s", event.entity_id, err)
            except Exception:
                # The status lock (Redis) or the guard itself failed: say so with the
                # traceback, and still refresh the cache below.
                log.exception("company %s: status not checked", event.entity_id)
        if self.refresh is None:
            return
        try:
            phones = await self.refresh(event.kind, event.entity_id, deleted)
        except DirectoryError as err:
            log.warning("%s %s: cache not refreshed: %s", event.kind, event.entity_id, err)
            return
        for phone in sorted(phones):
            await self.calls.redecide(phone)

    def judged(self, outcome: Outcome) -> None:
        self.metrics.statuses.labels(outcome.action).inc()
