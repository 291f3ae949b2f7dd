"""decide(): a table per rule branch of the default rules."""

from dataclasses import dataclass

import pytest

from rules import Company, Contact, Findings, Lead, decide, load_policy
from rules.decide import none_decision
from rules.model import Owner, Subject
from rules.policy import default_rules_text, parse_policy

POLICY = load_policy()
CALLER = "7"
DEFAULT = default_rules_text()
OTHER = "9"


def company(
    id: str, status: str | None, owner: str = OTHER, title: str = "ООО «Ромашка»"
) -> Company:
    return Company(id=id, title=title, assigned_by=owner, status=status, assigned_name="Анна")


def contact(id: str, *companies: str, owner: str = OTHER) -> Contact:
    return Contact(id=id, name="Пётр Иванов", assigned_by=owner, company_ids=companies)


def lead(id: str, company_id: str | None = None, owner: str = OTHER) -> Lead:
    return Lead(id=id, title="Заявка", assigned_by=owner, status="NEW", company_id=company_id)


@dataclass(frozen=True)
class Case:
    name: str
    findings: Findings
    colour: str
    rule: str | None


P = "+79160001122"
CASES = [
    Case("nothing found", Findings(P), "none", None),
    Case(
        "company in work, someone else's",
        Findings(P, companies=(company("10", "IN_WORK"),)),
        "red",
        "foreign-client-in-work",
    ),
    Case(
        "company in work, the caller's own",
        Findings(P, companies=(company("10", "IN_WORK", owner=CALLER),)),
        "none",
        None,
    ),
    Case("company pending", Findings(P, companies=(company("10", "PENDING"),)), "none", None),
    Case("company declined", Findings(P, companies=(company("10", "DECLINED"),)), "none", None),
    Case("company without status", Findings(P, companies=(company("10", None),)), "none", None),
    Case(
        "company reached only through a contact",
        Findings(P, contacts=(contact("20", "10"),), linked_companies=(company("10", "IN_WORK"),)),
        "red",
        "foreign-client-in-work",
    ),
    Case(
        "contact of two companies, the second in work with another",
        Findings(
            P,
            contacts=(contact("20", "10", "11"),),
            linked_companies=(
                company("10", "IN_WORK", owner=CALLER),
                company("11", "IN_WORK", title="АО «Вектор»"),
            ),
        ),
        "red",
        "foreign-client-in-work",
    ),
    Case(
        "contact of two companies, both the caller's",
        Findings(
            P,
            contacts=(contact("20", "10", "11"),),
            linked_companies=(
                company("10", "IN_WORK", owner=CALLER),
                company("11", "IN_WORK", owner=CALLER),
            ),
        ),
        "yellow",
        "known-contact",
    ),
    Case(
        "contact whose company is pending",
        Findings(P, contacts=(contact("20", "10"),), linked_companies=(company("10", "PENDING"),)),
        "yellow",
        "known-contact",
    ),
    Case(
        "contact without company", Findings(P, contacts=(contact("20"),)), "yellow", "known-contact"
    ),
    Case(
        "the caller's own contact",
        Findings(P, contacts=(contact("20", owner=CALLER),)),
        "yellow",
        "known-contact",
    ),
    Case("lead only", Findings(P, leads=(lead("30"),)), "blue", "lead-only"),
    Case(
        "converted lead linked to a company in work",
        Findings(P, leads=(lead("30", "10"),), linked_companies=(company("10", "IN_WORK"),)),
        "red",
        "foreign-client-in-work",
    ),
    Case(
        "converted lead linked to a pending company",
        Findings(P, leads=(lead("30", "10"),), linked_companies=(company("10", "PENDING"),)),
        "blue",
        "lead-only",
    ),
    Case(
        "number shared by a company (pending) and a lead",
        Findings(P, leads=(lead("30"),), companies=(company("10", "PENDING"),)),
        "none",
        None,
    ),
    Case(
        "number shared by a company in work and a lead",
        Findings(P, leads=(lead("30"),), companies=(company("10", "IN_WORK"),)),
        "red",
        "foreign-client-in-work",
    ),
    Case(
        "lead and contact: contact wins over lead",
        Findings(P, leads=(lead("30"),), contacts=(contact("20"),)),
        "yellow",
        "known-contact",
    ),
    Case(
        "company in work and contact: red wins",
        Findings(P, contacts=(contact("20"),), companies=(company("10", "IN_WORK"),)),
        "red",
        "foreign-client-in-work",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_default_rules(case: Case) -> None:
    decision = decide(case.findings, CALLER, POLICY)
    assert (decision.colour, decision.rule) == (case.colour, case.rule)
    if case.colour == "none":
        assert decision.background is None
    else:
        assert decision.background == POLICY.colours[case.colour]


def test_red_reason_names_the_company_and_its_manager() -> None:
    found = Findings(P, companies=(company("10", "IN_WORK"),))
    decision = decide(found, CALLER, POLICY)
    assert "ООО «Ромашка»" in decision.reason
    assert "Анна" in decision.reason
    assert decision.entity == "company:10"
    assert decision.background == "#d32f2f"


def test_manager_without_a_name_is_named_by_id() -> None:
    found = Findings(P, leads=(Lead("30", "Заявка", "12"),))
    decision = decide(found, CALLER, POLICY)
    assert "#12" in decision.reason
    assert decision.background == "#1565c0"


def test_not_found_and_no_rule_reasons_differ() -> None:
    assert decide(Findings(P), CALLER, POLICY).text("en") == "Number not found in CRM"
    assert decide(Findings(P), CALLER, POLICY).text("ru") == "Номер не найден в CRM"
    pending = Findings(P, companies=(company("10", "PENDING"),))
    assert decide(pending, CALLER, POLICY).text("en") == "No rule matched"


def test_a_reason_comes_in_one_language_with_its_owner_and_subject() -> None:
    found = Findings(P, companies=(company("10", "IN_WORK"),))
    decision = decide(found, CALLER, POLICY)
    assert decision.text("ru") == "Чужой клиент: Анна · ООО «Ромашка» · В работе"
    assert decision.text("en") == "Another manager's client: Анна · ООО «Ромашка» · In work"
    assert decision.owner == Owner(OTHER, "Анна")
    assert decision.subject == Subject(
        "company", "10", "ООО «Ромашка»", "IN_WORK", "В работе", "In work"
    )
    contact_only = decide(Findings(P, contacts=(contact("20"),)), CALLER, POLICY)
    assert contact_only.subject is not None
    assert contact_only.subject.kind == "contact"
    assert "(" not in contact_only.text("ru")


def test_a_rule_with_one_text_shows_it_in_every_language() -> None:
    single = parse_policy(DEFAULT.replace('reason_en = "Another', '# reason_en = "Another'))
    decision = decide(Findings(P, companies=(company("10", "IN_WORK"),)), CALLER, single)
    assert decision.text("en") == decision.text("ru") == decision.reason


def test_colours_of_the_default_rules() -> None:
    assert POLICY.colours == {"red": "#d32f2f", "yellow": "#f9a825", "blue": "#1565c0"}
    assert [s.code for s in POLICY.statuses] == ["PENDING", "IN_WORK", "DECLINED"]
    assert POLICY.initial_status == "PENDING"
    assert POLICY.status("IN_WORK") is not None
    assert POLICY.status("IN_WORK").label == "В работе (In work)"  # type: ignore[union-attr]


def test_none_decision_keeps_the_popup_look() -> None:
    d = none_decision("CRM did not answer in time")
    assert (d.colour, d.background, d.rule) == ("none", None, None)


def test_findings_k_lists_a_company_once() -> None:
    c = company("10", "IN_WORK")
    found = Findings(P, companies=(c,), linked_companies=(c, company("11", None)))
    assert [x.id for x in found.all_companies] == ["10", "11"]
    as_dict = found.to_dict()
    assert as_dict["phone"] == P
    assert [x["id"] for x in as_dict["companies"]] == ["10"]  # type: ignore[index]


def test_a_reason_without_colour_is_one_shared_decision() -> None:
    """The gateway keeps a decision's encodings per object: a slow CRM's "late" decision, made
    every call, must be one object, not a new entry a call."""
    late = none_decision("CRM не ответила вовремя", "The CRM did not answer in time")
    assert late is none_decision("CRM не ответила вовремя", "The CRM did not answer in time")
    assert (late.colour, late.background, late.rule) == ("none", None, None)
    assert late.text("en") == "The CRM did not answer in time"
    assert none_decision("other") is not late
