"""decide(findings, caller_id, policy) -> Decision: the first matching rule wins."""

from __future__ import annotations

from rules.model import Company, Contact, Decision, Findings, Lead
from rules.policy import NONE, Policy, Rule

Entity = Company | Contact | Lead

_KIND = {
    "company": "компания (company)",
    "direct_company": "компания (company)",
    "contact": "контакт (contact)",
    "lead": "лид (lead)",
}


def decide(findings: Findings, caller_id: str, policy: Policy) -> Decision:
    for rule in policy.rules:
        if any(_candidates(findings, kind) for kind in rule.unless):
            continue
        for entity in _candidates(findings, rule.match):
            if _fits(rule, entity, caller_id):
                return Decision(
                    colour=rule.colour,
                    background=policy.colours[rule.colour],
                    rule=rule.id,
                    reason=_reason(rule, entity, policy),
                    entity=f"{rule.match.removeprefix('direct_')}:{entity.id}",
                )
    reason = policy.not_found_reason if findings.empty else policy.no_rule_reason
    return Decision(colour=NONE, background=None, rule=None, reason=reason)


def none_decision(reason: str) -> Decision:
    """The popup keeps its own look, with ``reason`` (e.g. the CRM did not answer in time)."""
    return Decision(colour=NONE, background=None, rule=None, reason=reason)


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


def _reason(rule: Rule, entity: Entity, policy: Policy) -> str:
    title = entity.name if isinstance(entity, Contact) else entity.title
    manager = entity.assigned_name or f"#{entity.assigned_by}"
    status = ""
    if isinstance(entity, Company):
        found = policy.status(entity.status)
        status = found.label if found else (entity.status or "")
    template = rule.reason or "{kind}: {title} ({manager})"
    return template.format(title=title, manager=manager, status=status, kind=_KIND[rule.match])
