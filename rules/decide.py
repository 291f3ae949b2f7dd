"""decide(findings, caller_id, policy) -> Decision: the first matching rule wins."""

from __future__ import annotations

from functools import lru_cache

from rules.model import Company, Contact, Decision, Findings, Lead, Owner, Subject
from rules.policy import NONE, Policy, Rule

Entity = Company | Contact | Lead

_KIND = {"company": "компания", "direct_company": "компания", "contact": "контакт", "lead": "лид"}
_KIND_EN = {"company": "company", "direct_company": "company", "contact": "contact", "lead": "lead"}


def decide(findings: Findings, caller_id: str, policy: Policy) -> Decision:
    for rule in policy.rules:
        if any(_candidates(findings, kind) for kind in rule.unless):
            continue
        for entity in _candidates(findings, rule.match):
            if _fits(rule, entity, caller_id):
                subject = _subject(rule, entity, policy)
                return Decision(
                    colour=rule.colour,
                    background=policy.colours[rule.colour],
                    rule=rule.id,
                    reason=_reason(rule.reason, entity, subject, "ru"),
                    entity=f"{subject.kind}:{entity.id}",
                    reason_en=_reason(rule.reason_en, entity, subject, "en")
                    if rule.reason_en
                    else "",
                    owner=Owner(entity.assigned_by, _manager(entity)),
                    subject=subject,
                )
    if findings.empty:
        return none_decision(policy.not_found_reason, policy.not_found_reason_en)
    return none_decision(policy.no_rule_reason, policy.no_rule_reason_en)


@lru_cache(maxsize=64)
def none_decision(reason: str, reason_en: str = "") -> Decision:
    """The popup keeps its own look, with ``reason`` (e.g. the CRM did not answer in time).
    One object per reason: the gateway keeps each decision's encodings per object, and a slow
    CRM makes one of these every call (a Decision is immutable, so sharing it is safe)."""
    return Decision(colour=NONE, background=None, rule=None, reason=reason, reason_en=reason_en)


def _candidates(findings: Findings, kind: str) -> tuple[Entity, ...]:
    if kind == "company":
        return findings.all_companies
    if kind == "direct_company":
        return findings.companies
    if kind == "contact":
        return findings.contacts
    return findings.leads


def _fits(rule: Rule, entity: Entity, caller_id: str) -> bool:
    if rule.statuses is not None and (
        not isinstance(entity, Company) or entity.status not in rule.statuses
    ):
        return False
    if rule.responsible == "caller":
        return entity.assigned_by == caller_id
    if rule.responsible == "other":
        return entity.assigned_by != caller_id
    return True


def _subject(rule: Rule, entity: Entity, policy: Policy) -> Subject:
    kind = rule.match.removeprefix("direct_")
    if isinstance(entity, Company):
        found = policy.status(entity.status)
        names = (found.name, found.name_en) if found else (entity.status or "", "")
        return Subject(kind, entity.id, entity.title, entity.status, *names)
    return Subject(kind, entity.id, entity.name if isinstance(entity, Contact) else entity.title)


def _manager(entity: Entity) -> str:
    return entity.assigned_name or f"#{entity.assigned_by}"


def _reason(template: str, entity: Entity, subject: Subject, lang: str) -> str:
    kinds = _KIND_EN if lang == "en" else _KIND
    kind = kinds["contact" if isinstance(entity, Contact) else subject.kind]
    template = template or ("{kind}: {title} ({manager})")
    return template.format(
        title=subject.title, manager=_manager(entity), status=subject.status_in(lang), kind=kind
    )
