"""The rules' decisions, remembered per findings and per kind of caller.

A warm lookup returns the same :class:`rules.model.Findings` object until the number changes,
and the rules with their reason texts (~10 us a call) give the same answer for the same caller:
remember it. ``rules.decide`` looks at the caller only to compare it with the responsible
managers of what was found (``responsible: caller | other``), so every caller who is none of
them gets the same decision: one entry serves them all. Keyed per caller instead, a team of
hundreds calling a few thousand numbers would almost never hit (bench/throughput.py: 5000 users,
the memo's decide was 6% of the gateway's CPU, nearly all misses).

The entry keeps the findings alive, so their ``id`` is not reused while remembered. A bound, not
an LRU: refilling after a clear costs one decide a number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from rules.decide import decide
from rules.model import Company, Contact, Decision, Findings, Lead
from rules.policy import Policy

DECISIONS = 8192  # findings whose decisions are remembered
OUTSIDER = ""  # the key of every caller who is responsible for nothing found (no user id is "")
T = TypeVar("T")  # what PerDecision keeps


class _Known:
    __slots__ = ("decisions", "findings", "responsible")

    def __init__(self, findings: Findings) -> None:
        self.findings = findings  # held: its id stays its own while remembered
        entities: tuple[Lead | Contact | Company, ...] = (
            *findings.leads,
            *findings.contacts,
            *findings.all_companies,
        )
        self.responsible = frozenset(entity.assigned_by for entity in entities)
        self.decisions: dict[str, Decision] = {}


class DecisionMemo:
    __slots__ = ("_known", "policy", "size")

    def __init__(self, policy: Policy, size: int = DECISIONS) -> None:
        self.policy = policy
        self.size = size
        self._known: dict[int, _Known] = {}

    def decide(self, findings: Findings, caller: str) -> Decision:
        known = self._known.get(id(findings))
        if known is None or known.findings is not findings:
            if len(self._known) >= self.size:
                self._known.clear()
            known = self._known[id(findings)] = _Known(findings)
        who = caller if caller in known.responsible else OUTSIDER
        decision = known.decisions.get(who)
        if decision is None:
            decision = known.decisions[who] = decide(findings, caller, self.policy)
        return decision


class PerDecision(Generic[T]):
    """What ``make(decision, key)`` gives, made once per decision object and key: the encodings
    of a decision that every call sharing it sends (its paint frame's part, the answer's part).

    :class:`DecisionMemo` hands out the same few decision objects call after call, so this is
    found by identity, not by hashing eight fields; an entry holds its decision, so the id it is
    found by is not reused while kept. A bound, not an LRU, as above.
    """

    __slots__ = ("_known", "make", "size")

    def __init__(self, make: Callable[[Decision, str], T], size: int = DECISIONS) -> None:
        self.make = make
        self.size = size
        self._known: dict[tuple[int, str], tuple[Decision, T]] = {}

    def get(self, decision: Decision, key: str = "") -> T:
        known = self._known.get((id(decision), key))
        if known is None or known[0] is not decision:
            if len(self._known) >= self.size:
                self._known.clear()
            known = self._known[id(decision), key] = (decision, self.make(decision, key))
        return known[1]
