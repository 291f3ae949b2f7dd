"""``POST /bitrix/events``: the outgoing webhook, answered at once, worked on in the background.

Order of checks: no ``CALLGUARD_WEBHOOK_TOKEN`` -> 503; body over the bound -> 413; not a form ->
400; ``auth[application_token]`` missing or wrong -> 401 (one log line, nothing done); a known
event with bad data -> 400; an event we do not handle -> 200, ignored; otherwise 200 and the event
is queued. Parsing is pure (gateway/portal/events.py); the work runs in two bounded queues:

- telephony events in one ordered worker, so a call's init, start and end are applied in the order
  the portal sent them. Like a tab's ``call`` frame, a start only starts the paint and does not
  wait for the CRM: the next event (often the call's end) is handled at once. An end cancels its
  call's paint still being started, so a late paint never overtakes the end that followed it.
  A start while the user's (or the gateway's) calls in flight are at their bound is dropped:
  counted in ``callguard_calls_refused{source="portal"}``, logged once per burst;
- on shutdown (:meth:`Portal.drain`) new events are refused with 503 and those queued are handled,
  with the paints they started, for up to ``CALLGUARD_SHUTDOWN_DRAIN`` seconds;
- CRM events in several workers (each may make a few REST calls); the status guard serialises
  events about one company itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from starlette.requests import Request
from starlette.responses import Response

from gateway.crm import DirectoryError
from gateway.live.calls import Calls
from gateway.live.inflight import Busy
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
        self._painting: dict[str, set[asyncio.Task[object]]] = {}  # call id -> its paints
        self.closing = False

    async def start(self) -> None:
        self.telephony.start()
        self.crm.start()

    async def stop(self) -> None:
        await self.telephony.stop()
        await self.crm.stop()
        pending = [task for tasks in self._painting.values() for task in tasks]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self.guard is not None:
            await self.guard.store.close()

    async def idle(self) -> None:
        """Wait until every accepted event has been handled, the paints it started included
        (tests, graceful shutdown)."""
        await self.telephony.join()
        await self.crm.join()
        while self._painting:
            # wait(), not gather(): a caller that gives up (a timeout) must not cancel the paints.
            await asyncio.wait([task for tasks in self._painting.values() for task in tasks])

    async def drain(self, seconds: float) -> bool:
        """Shutdown: refuse new events, then wait up to ``seconds`` for those accepted and their
        paints; False (and one warning) when some were left."""
        self.closing = True
        try:
            async with asyncio.timeout(seconds):
                await self.idle()
        except TimeoutError:
            left = self.telephony.size + self.crm.size + len(self._painting)
            log.warning("shutdown: %d portal events or paints left after %gs", left, seconds)
            return False
        return True

    # -- the endpoint ------------------------------------------------------------------------

    async def receive(self, request: Request) -> Response:
        if not self.webhook_token:
            return failure(
                503,
                "webhook_disabled",
                "POST /bitrix/events is off: set CALLGUARD_WEBHOOK_TOKEN to the outgoing "
                "webhook's application token",
            )
        if self.closing:
            self.metrics.events.labels("-", "shutting_down").inc()
            return failure(503, "shutting_down", "this gateway process is shutting down")
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
            self._paint(event.user_id, event.call_id, ring)
        elif isinstance(event, CallEnd):
            ring = self.memory.ring(event.call_id)
            ring.ended = True
            ring.waiting_user = None
            # A paint not yet started would register the call after this end; one waiting for
            # the CRM would be dropped by end_call anyway (the lookup goes on, into the cache).
            for task in self._painting.pop(event.call_id, ()):
                task.cancel()
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
            self._paint(user, event.call_id, ring)

    def _paint(self, user_id: str, call_id: str, ring: _Ring) -> None:
        """Start painting the call and return: the worker does not wait for the CRM."""
        assert ring.phone is not None
        direction: Direction = "out" if ring.direction == "out" else "in"
        # ring.phone is the key CallInit normalised: the call is not normalised again.
        event = self.calls.keyed(user_id, call_id, ring.phone, direction, "portal")
        try:
            task = self.calls.start(event, only_if_unpainted=True)
        except Busy:
            return  # counted and logged (once per burst) by the pipeline; the popup keeps its look
        if task is None:  # a tab of the user reported this ring first: its paint is the one
            return
        self._painting.setdefault(call_id, set()).add(task)
        task.add_done_callback(lambda done: self._painted(call_id, done))

    def _painted(self, call_id: str, task: asyncio.Task[object]) -> None:
        tasks = self._painting.get(call_id)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._painting[call_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("painting call %s failed", call_id, exc_info=task.exception())

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
