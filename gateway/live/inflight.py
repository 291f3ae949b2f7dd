"""Calls being decided (a lookup, then a paint), per user and in all, under two bounds (issue 14).

A call that enters (a tab's ``call`` frame, ``POST /api/calls``, the portal's call start) holds
one place from the moment it is admitted until its decide ends: painted, overtaken by a newer
event, ended, cancelled. One user holds at most ``per_user`` places
(``CALLGUARD_USER_INFLIGHT``), all users together at most ``total`` (``CALLGUARD_MAX_INFLIGHT``).
A call beyond a bound is refused at once with :class:`Busy`: an answer now rather than a queue
without end, where one tab's flood of valid frames once held 34,910 lookups and 300 MB and
stalled the loop for seconds. A place is held through the deadline, so a slow CRM bounds the
work it causes instead of multiplying it; a call ended early (the per-user call cap) keeps its
place until its lookup is done, as the lookup itself goes on.

A place belongs to a call, not to an event: the call's number sent again, or another tab of the
user reporting the same ring, replaces or joins the decide under way and takes no place.

A refusal is told once per burst, not once per frame: one warning when a scope (a user, or all)
starts refusing, one line when it has drained to half its bound, with the count refused between.
"""

from __future__ import annotations

import logging

log = logging.getLogger("callguard.inflight")

USER_INFLIGHT = 64  # CALLGUARD_USER_INFLIGHT: above issue 9's burst of 40 calls of one user
MAX_INFLIGHT = 1000  # CALLGUARD_MAX_INFLIGHT
USER = "user"
ALL = "all"
SCOPES = (USER, ALL)
_ALL_KEY = ""  # the burst key of the global scope: never a user id (those are digits)


class Busy(Exception):
    """A call refused because its user (``scope`` "user") or the gateway ("all") has as many
    calls being decided as its bound allows; ``message`` is the client's error text."""

    def __init__(self, scope: str, limit: int) -> None:
        whose = "this user" if scope == USER else "the gateway"
        setting = "CALLGUARD_USER_INFLIGHT" if scope == USER else "CALLGUARD_MAX_INFLIGHT"
        self.scope = scope
        self.limit = limit
        self.message = (
            f"{whose} has {limit} calls being looked up ({setting}); "
            "this call is not looked up: send it again in a moment"
        )
        super().__init__(self.message)


class InFlight:
    """The places: :meth:`admit` checks both bounds, :meth:`take` and :meth:`give` move one."""

    def __init__(self, per_user: int = USER_INFLIGHT, total: int = MAX_INFLIGHT) -> None:
        self.per_user = per_user
        self.total = total
        self.count = 0
        self.peak = 0  # the most held in all since start
        self.user_peak = 0  # the most one user held since start
        self._users: dict[str, int] = {}
        self._bursts: dict[str, int] = {}  # a refusing scope's key -> calls refused in its burst

    def of(self, user_id: str) -> int:
        return self._users.get(user_id, 0)

    def admit(self, user_id: str) -> None:
        """Raise :class:`Busy` when ``user_id`` or the gateway has no place left."""
        if self._users.get(user_id, 0) >= self.per_user:
            self._refused(user_id, USER, self.per_user)
        if self.count >= self.total:
            self._refused(_ALL_KEY, ALL, self.total)

    def take(self, user_id: str) -> None:
        held = self._users[user_id] = self._users.get(user_id, 0) + 1
        self.count += 1
        self.user_peak = max(self.user_peak, held)
        self.peak = max(self.peak, self.count)

    def give(self, user_id: str) -> None:
        held = self._users[user_id] - 1
        if held:
            self._users[user_id] = held
        else:
            del self._users[user_id]
        self.count -= 1
        if self._bursts:
            if held * 2 <= self.per_user and user_id in self._bursts:
                self._calm(user_id, f"user {user_id}")
            if self.count * 2 <= self.total and _ALL_KEY in self._bursts:
                self._calm(_ALL_KEY, "the gateway")

    def _refused(self, key: str, scope: str, limit: int) -> None:
        refused = self._bursts.get(key, 0)
        if not refused:
            who = f"user {key}" if scope == USER else "the gateway"
            log.warning(
                "%s has %d calls being looked up; refusing new ones (busy) until half are done",
                who,
                limit,
            )
        self._bursts[key] = refused + 1
        raise Busy(scope, limit)

    def _calm(self, key: str, who: str) -> None:
        refused = self._bursts.pop(key)
        log.info("%s takes calls again; %d refused while busy", who, refused)
