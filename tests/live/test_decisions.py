"""DecisionMemo: the decision it remembers is the one rules.decide gives, for every caller.

The memo shares one entry among the callers responsible for nothing found; these tests hold it to
``decide`` on findings whose entities belong to a few managers, with callers among them and
outside them, under the default rules and under rules that look for the caller's own entities.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.live.decisions import DecisionMemo, PerDecision
from rules import Company, Contact, Decision, Findings, Lead, decide, load_policy
from rules.policy import default_rules_text, parse_policy
from tests.fuzz import examples

MANAGERS = ("1", "2", "3")
CALLERS = ("1", "2", "3", "4", "5")
DEFAULT = load_policy()
# The caller's own clients first, in another colour: a memo keyed on the wrong thing mixes them up.
OWN_FIRST = parse_policy(
    default_rules_text().replace(
        "[[rules]]",
        '[[rules]]\nid = "own-contact"\ncolour = "blue"\nmatch = "contact"\n'
        'responsible = "caller"\nreason = "Ваш контакт: {title}"\n\n[[rules]]',
        1,
    )
)

owners = st.sampled_from(MANAGERS)
statuses = st.sampled_from(("IN_WORK", "PENDING", None))
companies = st.builds(
    Company, id=st.sampled_from(("10", "11")), title=st.just("Ромашка"), assigned_by=owners,
    status=statuses,
)  # fmt: skip
contacts = st.builds(
    Contact, id=st.sampled_from(("20", "21")), name=st.just("Пётр"), assigned_by=owners,
    company_ids=st.just(("10",)),
)  # fmt: skip
leads = st.builds(Lead, id=st.just("30"), title=st.just("Заявка"), assigned_by=owners)
findings = st.builds(
    Findings,
    phone=st.just("+79160001122"),
    leads=st.lists(leads, max_size=1).map(tuple),
    contacts=st.lists(contacts, max_size=2, unique_by=lambda c: c.id).map(tuple),
    companies=st.lists(companies, max_size=1).map(tuple),
    linked_companies=st.lists(companies, max_size=2, unique_by=lambda c: c.id).map(tuple),
)


def test_the_extra_rule_looks_for_the_callers_own_contacts() -> None:
    # Guards the replace() above: without the rule the caller-specific case is not exercised.
    assert [r.responsible for r in OWN_FIRST.rules][:2] == ["caller", "other"]


@settings(max_examples=examples(150))
@given(found=findings, callers=st.lists(st.sampled_from(CALLERS), min_size=1, max_size=12))
def test_the_memo_decides_as_the_rules_do(found: Findings, callers: list[str]) -> None:
    for policy in (DEFAULT, OWN_FIRST):
        memo = DecisionMemo(policy)
        for caller in callers:
            assert memo.decide(found, caller) == decide(found, caller, policy)


def test_a_full_memo_starts_again_and_still_answers() -> None:
    memo = DecisionMemo(DEFAULT, size=2)
    many = [
        Findings(f"+7916000000{i}", companies=(Company(str(i), "x", "1", "IN_WORK"),))
        for i in range(5)
    ]
    for found in many:
        assert memo.decide(found, "2").colour == "red"
        assert memo.decide(found, "1").colour == "none"


def test_per_decision_makes_each_value_once_per_decision_and_key() -> None:
    made: list[tuple[str, str]] = []

    def make(decision: Decision, key: str) -> str:
        made.append((decision.colour, key))
        return f"{decision.colour}/{key}"

    values = PerDecision(make, size=2)
    red, blue = (Decision(c, None, None, "why") for c in ("red", "blue"))
    assert [values.get(red, "ru"), values.get(red, "ru"), values.get(red, "en")] == [
        "red/ru",
        "red/ru",
        "red/en",
    ]
    assert made == [("red", "ru"), ("red", "en")]
    # Full: it starts again, and still answers; an equal decision of its own is its own entry.
    assert values.get(blue) == "blue/"
    assert values.get(Decision("red", None, None, "why"), "ru") == "red/ru"
    assert made[2:] == [("blue", ""), ("red", "ru")]
