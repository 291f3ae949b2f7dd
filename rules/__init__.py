"""Callguard's pure decision core: phones, the CRM model, the rules file and ``decide``.

Only the standard library and ``phonenumbers`` may be imported here (a test enforces it).
"""

from rules.decide import decide
from rules.model import Company, Contact, Decision, Findings, Lead
from rules.phones import InvalidPhone, normalize
from rules.policy import Policy, PolicyError, load_policy, parse_policy

__all__ = [
    "Company",
    "Contact",
    "Decision",
    "Findings",
    "InvalidPhone",
    "Lead",
    "Policy",
    "PolicyError",
    "decide",
    "load_policy",
    "normalize",
    "parse_policy",
]
