"""The rules' decisions, remembered per (findings, caller).

A warm lookup returns the same :class:`rules.model.Findings` object until the number changes,
and the rules with their reason texts (~10 us a call) give the same answer for the same caller:
remember it. The entry keeps the findings alive, so their ``id`` is not reused while
remembered. A bound, not an LRU: refilling after a clear costs one decide a call.
"""

from __future__ import annotations

from rules.decide import decide
from rules.model import Decision, Findings
from rules.policy import Policy

DECISIONS = 8192  # (findings, caller) pairs whose decisions are remembered


class DecisionMemo:
    __slots__ = ("_known", "policy", "size")

    def __init__(self, policy: Policy, size: int = DECISIONS) -> None:
        self.policy = policy
        self.size = size
        self._known: dict[tuple[int, str], tuple[Findings, Decision]] = {}

    def decide(self, findings: Findings, caller: str) -> Decision:
        key = (id(findings), caller)
        known = self._known.get(key)
        if known is not None and known[0] is findings:
            return known[1]
        decision = decide(findings, caller, self.policy)
        if len(self._known) >= self.size:
            self._known.clear()
        self._known[key] = (findings, decision)
        return decision
