"""Rules files: the default loads; bad files are refused naming the file and the key."""

from pathlib import Path

import pytest

from rules import Company, Findings, PolicyError, decide, load_policy, parse_policy
from rules.policy import default_rules_text

DEFAULT = default_rules_text()


def test_default_rules_load() -> None:
    policy = load_policy()
    assert [r.id for r in policy.rules] == ["foreign-client-in-work", "known-contact", "lead-only"]
    assert policy.source == "rules/default.toml"


def broken(old: str, new: str) -> str:
    assert old in DEFAULT
    return DEFAULT.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            broken('colour = "red"', 'colur = "red"'),
            r"rules\[0\]\.colur: unknown key \(did you mean 'colour'\?\)",
        ),
        (
            broken('colour = "yellow"', 'colour = "purple"'),
            r"rules\[1\]\.colour: unknown colour 'purple' \(known: blue, red, yellow\)",
        ),
        (
            broken('status = ["IN_WORK"]', 'status = ["IN_WROK"]'),
            r"rules\[0\]\.status: unknown status 'IN_WROK' \(known: DECLINED, IN_WORK, PENDING\)",
        ),
        (
            broken("[[statuses]]", "[[statusses]]"),
            r"statusses: unknown key \(did you mean 'statuses'\?\)",
        ),
        (
            broken('match = "contact"', 'match = "contacts"'),
            r"rules\[1\]\.match: 'contacts' is not one of",
        ),
        (
            broken('responsible = "other"', 'responsible = "others"'),
            r"rules\[0\]\.responsible: 'others' is not one of",
        ),
        (
            broken('red = "#d32f2f"', 'red = "crimson"'),
            r"colours\.red: 'crimson' is not a #rrggbb colour",
        ),
        (
            broken("ответственный {manager}", "ответственный {owner}"),
            r"rules\[1\]\.reason: unknown placeholder \{owner\}",
        ),
        (
            broken("responsible {manager}", "responsible {owner}"),
            r"rules\[1\]\.reason_en: unknown placeholder \{owner\}",
        ),
        (
            broken('not_found_en = "', 'not_fuond_en = "'),
            r"texts\.not_fuond_en: unknown key \(did you mean 'not_found_en'\?\)",
        ),
        (
            broken('id = "known-contact"', 'id = "lead-only"'),
            r"rules\[2\]\.id: duplicate rule id 'lead-only'",
        ),
        (
            broken("initial = true", "initial = false"),
            r"statuses: exactly one status must have initial = true",
        ),
        (
            broken('code = "IN_WORK"', 'code = "in work"'),
            r"statuses\[1\]\.code: 'in work' must be A-Z",
        ),
        (
            broken('match = "lead"', 'match = "lead"\nstatus = ["NEW"]'),
            r"rules\[2\]\.status: only companies have a status",
        ),
        (
            broken('unless = ["contact", "direct_company"]', 'unless = ["deal"]'),
            r"rules\[2\]\.unless: must be a list of",
        ),
        (broken("version = 1", "version = 2"), r"version: only version 1 is supported"),
        (broken('id = "known-contact"\n', ""), r"rules\[1\]\.id: missing"),
        (broken("[texts]", "[textz]"), r"textz: unknown key \(did you mean 'texts'\?\)"),
        ("statuses = [", r"not valid TOML: Invalid value"),
        ("version = 1\n[colours]\nred = crimson\n", r"not valid TOML: .*line 3"),
        ("", r"colours: missing"),
    ],
)
def test_bad_rules_file_names_the_key(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=r"^my\.toml: " + message):
        parse_policy(text, source="my.toml")


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nope\.toml: rules file not found"):
        load_policy(tmp_path / "nope.toml")
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyError, match=r"bin\.toml: cannot read rules file"):
        load_policy(binary)


def test_a_deployment_file_changes_the_decision(tmp_path: Path) -> None:
    """Rules are data: a file where even the caller's own company in work turns purple."""
    custom = tmp_path / "rules.toml"
    custom.write_text(
        DEFAULT.replace('blue = "#1565c0"', 'blue = "#1565c0"\npurple = "#6a1b9a"').replace(
            '[[rules]]\nid = "known-contact"',
            '[[rules]]\nid = "own-client"\ncolour = "purple"\nmatch = "direct_company"\n'
            'status = ["IN_WORK"]\nresponsible = "caller"\nreason = "Ваш клиент {title} ({status})"\n\n'
            '[[rules]]\nid = "known-contact"',
        ),
        encoding="utf-8",
    )
    policy = load_policy(custom)
    own = Findings("+79160001122", companies=(Company("10", "ООО «Ромашка»", "7", "IN_WORK"),))
    decision = decide(own, "7", policy)
    assert (decision.colour, decision.rule, decision.background) == (
        "purple",
        "own-client",
        "#6a1b9a",
    )
    assert decision.reason == "Ваш клиент ООО «Ромашка» (В работе)"
