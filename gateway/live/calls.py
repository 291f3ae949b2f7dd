"""The pipeline: CallEvent -> lookup -> rules.decide -> Paint -> fanout, and call state per call.

One call is keyed by (user id, call id). Each paint of a call carries the next ``seq``. A call
lives until ``end_call`` (the tab's ``ended``, a portal event), ``settings.call_timeout``, or until
the user starts more than ``MAX_CALLS_PER_USER`` calls (the oldest is ended); ending pushes
``clear``. A tab that opens during a call gets the user's current paints (``current_frames``).
With several processes (``peers``, the Redis fanout) those include calls painted by another
process, and ``ended`` for such a call clears it everywhere; a peer's clear ends ours (``forget``).

Fail open: the lookup runs under ``lookup_deadline``. A late CRM gives colour ``none`` with
:data:`LATE_REASON`; a failing CRM gives ``none`` with :data:`FAILED_REASON`. No error reaches a
tab. Concurrent lookups of one number share one, the cache's
(:class:`gateway.crm.cache.CachedDirectory`): it runs the lookup in a task of its own, so one that
outlives the deadline carries on into the cache, and it logs each failed lookup once.

A phone is normalised once per call, where the call enters (:meth:`Calls.event`).

Work in flight is bounded (gateway/live/inflight.py): a call holds a place from its admission,
before any await, until its decide ends; a new call beyond the user's or the gateway's bound is
refused at once with :class:`gateway.live.inflight.Busy`, and starts no task.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Coroutine
from functools import partial
from typing import TYPE_CHECKING

from gateway.crm import Directory
from gateway.crm.budget import background, for_user
from gateway.live import wire
from gateway.live.call import CallEvent, CallState, Ledger, Paint, Peers
from gateway.live.decisions import DecisionMemo
from gateway.live.inflight import MAX_INFLIGHT, SCOPES, USER_INFLIGHT, Busy, InFlight
from gateway.run.metrics import Metrics
from rules.decide import none_decision
from rules.model import Decision, Findings
from rules.phones import normalize
from rules.policy import NONE, Policy

if TYPE_CHECKING:
    from gateway.live.fanout import Fanout

log = logging.getLogger("callguard.calls")

LATE_REASON = "CRM не ответила вовремя"
LATE_REASON_EN = "The CRM did not answer in time"
FAILED_REASON = "CRM недоступна, цвет не определён"
FAILED_REASON_EN = "The CRM is unavailable: no colour"
MAX_CALLS_PER_USER = 8
NORMALISED = 8192  # phone spellings whose keys are remembered
SOURCES = ("ws", "api", "portal")


class Calls:
    def __init__(
        self,
        directory: Directory,
        policy: Policy,
        fanout: Fanout,
        metrics: Metrics,
        *,
        region: str,
        lookup_deadline: float,
        call_timeout: float,
        peers: Peers | None = None,
        lang: str = "ru",
        ledger: Ledger | None = None,
        user_inflight: int = USER_INFLIGHT,
        max_inflight: int = MAX_INFLIGHT,
    ) -> None:
        self.directory = directory
        self.ledger = ledger  # None: no ledger (CALLGUARD_LEDGER_DAYS=0, benchmarks)
        self.lang = lang  # for calls that do not come from a tab: the portal's language
        self.peers = peers
        self.policy = policy
        self.fanout = fanout
        self.metrics = metrics
        self.region = region
        self.lookup_deadline = lookup_deadline
        self.call_timeout = call_timeout
        self._calls: dict[str, dict[str, CallState]] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self.inflight = InFlight(user_inflight, max_inflight)
        # phonenumbers.parse costs ~60 us a call, and a team dials the same few thousand numbers
        # all day, spelled as the popup shows them: remember the keys of the latest spellings.
        # (An invalid phone raises, and lru_cache keeps no exception: it is parsed each time.)
        self._keys = functools.lru_cache(maxsize=NORMALISED)(partial(normalize, region=region))
        # A label lookup takes a lock and a dict walk: bind each counter child once.
        self._received = {s: metrics.calls.labels(s) for s in SOURCES}
        self._busy = {
            (s, c): metrics.calls_refused.labels("busy", c, s) for c in SCOPES for s in SOURCES
        }
        self._outcomes = {o: metrics.lookups.labels(o) for o in ("ok", "late", "error")}
        self._painted = {c: metrics.decisions.labels(c) for c in (*policy.colours, NONE)}
        self._memo = DecisionMemo(policy)

    # -- entry points (tabs, POST /api/calls, portal webhooks) -------------------------------

    def normalize(self, phone: str) -> str:
        """The phone's E.164 key; raises :class:`rules.InvalidPhone` for anything else."""
        return self._keys(phone)

    def event(
        self,
        user_id: str,
        call_id: str,
        phone: str,
        direction: wire.Direction = "in",
        source: str = "api",
        lang: str | None = None,
    ) -> CallEvent:
        """A call as it enters: its phone normalised (raises :class:`rules.InvalidPhone`)."""
        return self.keyed(user_id, call_id, self.normalize(phone), direction, source, lang)

    def keyed(
        self,
        user_id: str,
        call_id: str,
        key: str,
        direction: wire.Direction = "in",
        source: str = "api",
        lang: str | None = None,
    ) -> CallEvent:
        """A call whose phone is already an E.164 key (the portal's CallInit normalised it)."""
        return CallEvent(
            user_id, call_id, key, direction, source, time.perf_counter(), lang or self.lang
        )

    def prewarm(self, phone: str) -> str:
        """Start the lookup of ``phone`` now, without waiting (the portal saw the call begin and
        the user's call follows); its key, for the call. Raises :class:`rules.InvalidPhone`."""
        key = self.normalize(phone)
        self._track(self._prewarm(key))
        return key

    async def start_call(
        self,
        user_id: str,
        call_id: str,
        phone: str,
        direction: wire.Direction = "in",
        *,
        only_if_unpainted: bool = False,
        source: str = "api",
        lang: str | None = None,
    ) -> Paint | None:
        """Decide and paint a call; the paint, or None when a newer event or the end overtook it.

        With ``only_if_unpainted`` a call already known with the same number keeps its paint
        (several tabs and the portal all report the same ring).
        """
        event = self.event(user_id, call_id, phone, direction, source, lang)
        return await self.begin(event, only_if_unpainted=only_if_unpainted)

    async def submit(
        self,
        user_id: str,
        call_id: str,
        phone: str,
        direction: wire.Direction = "in",
        *,
        only_if_unpainted: bool = False,
        source: str = "api",
        lang: str | None = None,
    ) -> None:
        """``start_call`` for callers that must not wait up to the deadline (a tab's receive
        loop): a warm number is painted before this returns, any other in the background. An
        invalid phone (:class:`rules.InvalidPhone`) or no place in flight
        (:class:`gateway.live.inflight.Busy`) still raises here, at once."""
        event = self.event(user_id, call_id, phone, direction, source, lang)
        held = self.directory.held(event.phone)
        if held is None:
            self.start(event, only_if_unpainted=only_if_unpainted)
            return
        # Warm: a task would only add its cost (~3 us a call). A failure ends no tab, as in one.
        try:
            await self.begin(event, only_if_unpainted=only_if_unpainted, held=held)
        except Busy:
            raise
        except Exception:
            log.exception("call %s of user %s failed", call_id, user_id)

    def start(
        self, event: CallEvent, *, only_if_unpainted: bool = False
    ) -> asyncio.Task[object] | None:
        """:meth:`begin` in a task of its own: the task, or None when the event joined a call
        already under way. Raises :class:`gateway.live.inflight.Busy` at once."""
        call = self._admit(event, only_if_unpainted)
        if call is None:
            return None
        task = self._track(self._begun(call, call.generation))
        # A done callback, not a finally: a task cancelled before its first step runs no code.
        task.add_done_callback(lambda _: call.release(self.inflight))
        return task

    async def begin(
        self, event: CallEvent, *, only_if_unpainted: bool = False, held: Findings | None = None
    ) -> Paint | None:
        """:meth:`start_call` for an event already made (its phone already normalised);
        ``held``: its findings, when already at hand."""
        call = self._admit(event, only_if_unpainted)
        if call is None:
            return self._calls[event.user_id][event.call_id].paint
        try:
            return await self._begun(call, call.generation, held)
        finally:
            call.release(self.inflight)

    def _admit(self, event: CallEvent, only_if_unpainted: bool) -> CallState | None:
        """Register the event's call and hold its place in flight, before any await (the next
        frame must see both); None when it joins the same number's call. Raises Busy."""
        user_id, call_id = event.user_id, event.call_id
        call = self._calls.get(user_id, {}).get(call_id)
        if call is not None and only_if_unpainted and call.event.phone == event.phone:
            return None
        if call is None or not call.deciding:  # a decide under way is replaced: no new place
            try:
                self.inflight.admit(user_id)
            except Busy as busy:
                self._busy[event.source, busy.scope].inc()
                raise
        self._received[event.source].inc()
        if call is None:
            call = self._calls.setdefault(user_id, {})[call_id] = CallState(event)
            call.timer = asyncio.get_running_loop().call_later(
                self.call_timeout, self._expire, user_id, call_id, call
            )
        else:
            call.event = event
            call.generation += 1
        call.hold(self.inflight)
        return call

    async def _begun(
        self, call: CallState, generation: int, held: Findings | None = None
    ) -> Paint | None:
        user_id = call.event.user_id
        user_calls = self._calls.get(user_id, {})
        # The oldest calls go; those still being decided keep their places until that is done.
        while len(user_calls) > MAX_CALLS_PER_USER:
            oldest = next(iter(user_calls))
            if oldest == call.event.call_id:
                break
            await self.end_call(user_id, oldest)
        return await self._paint(call, generation, held)

    async def end_call(self, user_id: str, call_id: str) -> bool:
        """End a call and clear it on the user's tabs; False when it was not known."""
        user_calls = self._calls.get(user_id)
        call = user_calls.pop(call_id, None) if user_calls else None
        if self.ledger is not None and (call is not None or self.peers is not None):
            self.ledger.ended(user_id, call_id)
        if call is None:
            if self.peers is None or call_id not in self.peers.elsewhere(user_id):
                return False
            await self.fanout.publish(user_id, call_id, wire.clear(call_id))
            return True
        if not user_calls:
            del self._calls[user_id]
        if call.timer is not None:
            call.timer.cancel()
        await self.fanout.publish(user_id, call_id, wire.clear(call_id))
        return True

    async def redecide(self, phone: str | None = None) -> int:
        """Decide current calls again (CRM data or rules changed); only ``phone``'s if given."""
        key = self.normalize(phone) if phone is not None else None
        current = [
            call
            for user_calls in self._calls.values()
            for call in user_calls.values()
            if key is None or call.event.phone == key
        ]
        for call in current:  # counted, never refused: calls already known, a few per user
            call.generation += 1
            call.hold(self.inflight)
        try:
            await asyncio.gather(*(self._paint(call, call.generation) for call in current))
        finally:
            for call in current:
                call.release(self.inflight)
        return len(current)

    def current_frames(self, user_id: str) -> list[tuple[str, str]]:
        """(call id, paint frame) for every painted call of ``user_id``, for a tab that opens."""
        user_calls = self._calls.get(user_id, {})
        frames = [(cid, c.paint.frame) for cid, c in user_calls.items() if c.paint is not None]
        if self.peers is not None:
            remote = self.peers.elsewhere(user_id)
            frames += [(cid, frame) for cid, frame in remote.items() if cid not in user_calls]
        return frames

    def forget(self, user_id: str, call_id: str) -> None:
        """Drop a call another process ended (its clear already reached our tabs)."""
        user_calls = self._calls.get(user_id)
        call = user_calls.pop(call_id, None) if user_calls else None
        if call is None:
            return
        if not user_calls:
            del self._calls[user_id]
        if call.timer is not None:
            call.timer.cancel()

    def applied(self, user_id: str, frame: wire.AppliedFrame) -> None:
        """A tab put a paint on screen; record the page's ring -> applied latency if it sent one."""
        if frame.latency_ms is not None:
            self.metrics.ring_to_applied.observe(frame.latency_ms / 1000.0)
            if self.ledger is not None:
                self.ledger.applied(user_id, frame.call_id, frame.latency_ms)

    @property
    def active(self) -> int:
        return sum(len(c) for c in self._calls.values())

    async def idle(self) -> None:
        """Wait until the calls and pre-warms started in the background are done (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for user_calls in self._calls.values():
            for call in user_calls.values():
                if call.timer is not None:
                    call.timer.cancel()
        self._calls.clear()
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- the pipeline ------------------------------------------------------------------------

    async def _paint(
        self, call: CallState, generation: int, held: Findings | None = None
    ) -> Paint | None:
        event = call.event
        decision = await self._decide(event, held)
        user_calls = self._calls.get(event.user_id)
        if user_calls is None or user_calls.get(event.call_id) is not call:
            return None  # ended while we looked it up
        if call.generation != generation:
            return None  # a newer event for this call is being decided
        call.seq += 1
        paint = call.paint = Paint(event, call.seq, decision)
        self._painted[decision.colour].inc()
        await self.fanout.publish(event.user_id, event.call_id, paint.frame)
        self.metrics.call_to_paint.observe(time.perf_counter() - event.received)
        if self.ledger is not None:
            self.ledger.record(paint)
        return paint

    async def _decide(self, event: CallEvent, held: Findings | None = None) -> Decision:
        held = self.directory.held(event.phone) if held is None else held
        if held is not None:
            # Warm: nothing to wait for, so no deadline or budget lane to set up (~5 us a call).
            self.metrics.lookup_seconds.observe(0.0)
            self._outcomes["ok"].inc()
            return self._memo.decide(held, event.user_id)
        started = time.perf_counter()
        try:
            # The caller's lane: a cold lookup counts against its user's share of the portal
            # budget (CALLGUARD_USER_RATE_SHARE), so one user's flood leaves the others theirs.
            async with asyncio.timeout(self.lookup_deadline):
                with for_user(event.user_id):
                    findings = await self.directory.lookup(event.phone)
        except TimeoutError:
            self._outcomes["late"].inc()
            return none_decision(LATE_REASON, LATE_REASON_EN)
        except Exception:  # the cache logs each failed lookup once
            self._outcomes["error"].inc()
            return none_decision(FAILED_REASON, FAILED_REASON_EN)
        finally:
            self.metrics.lookup_seconds.observe(time.perf_counter() - started)
        self._outcomes["ok"].inc()
        return self._memo.decide(findings, event.user_id)

    async def _prewarm(self, key: str) -> None:
        # Background lane: a pre-warm never takes the portal budget's last places from a live
        # call (a live call joining this lookup promotes it).
        with contextlib.suppress(Exception), background():  # the cache logs a failed lookup
            await self.directory.lookup(key)

    def _expire(self, user_id: str, call_id: str, call: CallState) -> None:
        if self._calls.get(user_id, {}).get(call_id) is not call:
            return
        log.info("call %s of user %s timed out; clearing it", call_id, user_id)
        self._track(self.end_call(user_id, call_id))

    def _track(self, work: Coroutine[object, None, object]) -> asyncio.Task[object]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
