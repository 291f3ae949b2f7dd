"""The rules file: company statuses, colours and the ordered colour rules, as data.

A rules file is TOML. Loading validates everything once, so ``decide`` never meets a bad rule; an
error names the file, the key and what is wrong (``rules.toml: rules[1].colour: unknown colour
'purpel' (known: blue, red, yellow)``).
"""

from __future__ import annotations

import difflib
import re
import string
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

MATCHES = ("company", "direct_company", "contact", "lead")
RESPONSIBLE = ("any", "caller", "other")
PLACEHOLDERS = frozenset({"title", "manager", "status", "kind"})
NONE = "none"
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,49}$")
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_CSS_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
LANGS = ("ru", "en")  # the portal's languages a text comes in; one language per text
_DEFAULT_NONE_REASON = "Номер не найден в CRM"
_DEFAULT_NONE_REASON_EN = "Number not found in CRM"
_DEFAULT_NO_RULE_REASON = "Ни одно правило не подошло"
_DEFAULT_NO_RULE_REASON_EN = "No rule matched"


class PolicyError(ValueError):
    """A rules file that cannot be used; ``str(err)`` names the file and the key."""


@dataclass(frozen=True, slots=True)
class Status:
    code: str
    name: str
    name_en: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} ({self.name_en})" if self.name_en else self.name

    def name_in(self, lang: str) -> str:
        """The name in ``lang`` ("ru" or "en"); the main name where no English one is given."""
        return self.name_en if lang == "en" and self.name_en else self.name


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    colour: str
    match: str
    statuses: frozenset[str] | None
    responsible: str
    unless: tuple[str, ...]
    reason: str
    reason_en: str = ""  # the reason in English; empty: the rules file gives one text only


@dataclass(frozen=True, slots=True)
class Policy:
    statuses: tuple[Status, ...]
    initial_status: str
    colours: dict[str, str]
    rules: tuple[Rule, ...]
    not_found_reason: str = _DEFAULT_NONE_REASON
    no_rule_reason: str = _DEFAULT_NO_RULE_REASON
    not_found_reason_en: str = _DEFAULT_NONE_REASON_EN
    no_rule_reason_en: str = _DEFAULT_NO_RULE_REASON_EN
    source: str = "<rules>"

    def status(self, code: str | None) -> Status | None:
        for item in self.statuses:
            if item.code == code:
                return item
        return None

    @property
    def status_codes(self) -> tuple[str, ...]:
        return tuple(s.code for s in self.statuses)


def default_rules_text() -> str:
    return resources.files("rules").joinpath("default.toml").read_text(encoding="utf-8")


def load_policy(path: str | Path | None = None) -> Policy:
    """Load a rules file; ``None`` loads the bundled ``rules/default.toml``."""
    if path is None:
        return parse_policy(default_rules_text(), source="rules/default.toml")
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{file}: rules file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PolicyError(f"{file}: cannot read rules file ({err})") from None
    return parse_policy(text, source=str(file))


def parse_policy(text: str, source: str = "<rules>") -> Policy:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise PolicyError(f"{source}: not valid TOML: {err}") from None
    return _Reader(source).policy(doc)


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> PolicyError:
        return PolicyError(f"{self.source}: {key}: {message}")

    def keys(
        self, table: dict[str, Any], where: str, required: set[str], optional: set[str]
    ) -> None:
        allowed = required | optional
        for key in table:
            if key not in allowed:
                hint = difflib.get_close_matches(key, sorted(allowed), n=1)
                extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise self.fail(_join(where, key), f"unknown key{extra}")
        for key in sorted(required):
            if key not in table:
                raise self.fail(_join(where, key), "missing")

    def text(self, table: dict[str, Any], key: str, where: str) -> str:
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(_join(where, key), "must be a non-empty string")
        return value

    def table_list(self, doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = doc.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
            raise self.fail(key, f"must be a non-empty array of tables ([[{key}]])")
        return value

    def policy(self, doc: dict[str, Any]) -> Policy:
        self.keys(doc, "", {"statuses", "colours", "rules"}, {"version", "texts"})
        if doc.get("version", 1) != 1:
            raise self.fail("version", "only version 1 is supported")
        statuses = self.statuses(self.table_list(doc, "statuses"))
        initial = [s for s, t in statuses if t]
        if len(initial) != 1:
            raise self.fail("statuses", "exactly one status must have initial = true")
        colours = self.colours(doc["colours"])
        codes = {s.code for s, _ in statuses}
        rules = tuple(
            self.rule(item, f"rules[{i}]", colours, codes)
            for i, item in enumerate(self.table_list(doc, "rules"))
        )
        seen: set[str] = set()
        for i, rule in enumerate(rules):
            if rule.id in seen:
                raise self.fail(f"rules[{i}].id", f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        texts = self.texts(doc.get("texts", {}))
        return Policy(
            statuses=tuple(s for s, _ in statuses),
            initial_status=initial[0].code,
            colours=colours,
            rules=rules,
            source=self.source,
            **texts,
        )

    def statuses(self, items: list[dict[str, Any]]) -> list[tuple[Status, bool]]:
        out: list[tuple[Status, bool]] = []
        for i, item in enumerate(items):
            where = f"statuses[{i}]"
            self.keys(item, where, {"code", "name"}, {"name_en", "initial"})
            code = self.text(item, "code", where)
            if not _CODE.match(code):
                raise self.fail(f"{where}.code", f"{code!r} must be A-Z, 0-9 and _ (at most 50)")
            if any(s.code == code for s, _ in out):
                raise self.fail(f"{where}.code", f"duplicate status {code!r}")
            name_en = item.get("name_en", "")
            if not isinstance(name_en, str):
                raise self.fail(f"{where}.name_en", "must be a string")
            initial = item.get("initial", False)
            if not isinstance(initial, bool):
                raise self.fail(f"{where}.initial", "must be true or false")
            out.append((Status(code, self.text(item, "name", where), name_en), initial))
        return out

    def colours(self, table: Any) -> dict[str, str]:
        if not isinstance(table, dict) or not table:
            raise self.fail("colours", 'must be a table of name = "#rrggbb"')
        out: dict[str, str] = {}
        for name, value in table.items():
            if name == NONE:
                raise self.fail(f"colours.{name}", "'none' is built in (the popup keeps its look)")
            if not re.match(r"^[a-z][a-z0-9_-]{0,31}$", name):
                raise self.fail(f"colours.{name}", "colour names are lower-case words")
            if not isinstance(value, str) or not _CSS_COLOUR.match(value):
                raise self.fail(f"colours.{name}", f"{value!r} is not a #rrggbb colour")
            out[name] = value.lower()
        return out

    def rule(
        self, item: dict[str, Any], where: str, colours: dict[str, str], codes: set[str]
    ) -> Rule:
        self.keys(
            item,
            where,
            {"id", "colour", "match"},
            {"status", "responsible", "unless", "reason", "reason_en"},
        )
        rule_id = self.text(item, "id", where)
        if not _RULE_ID.match(rule_id):
            raise self.fail(f"{where}.id", f"{rule_id!r} must be lower-case words joined by '-'")
        colour = self.text(item, "colour", where)
        if colour not in colours:
            raise self.fail(
                f"{where}.colour", f"unknown colour {colour!r} (known: {_names(colours)})"
            )
        match = self.choice(item, "match", where, MATCHES)
        statuses: frozenset[str] | None = None
        if "status" in item:
            if match not in ("company", "direct_company"):
                raise self.fail(f"{where}.status", "only companies have a status")
            raw = item["status"]
            if not isinstance(raw, list) or not raw or not all(isinstance(s, str) for s in raw):
                raise self.fail(f"{where}.status", "must be a non-empty list of status codes")
            for code in raw:
                if code not in codes:
                    raise self.fail(
                        f"{where}.status", f"unknown status {code!r} (known: {_names(codes)})"
                    )
            statuses = frozenset(raw)
        responsible = self.choice(item, "responsible", where, RESPONSIBLE, default="any")
        unless_raw = item.get("unless", [])
        if not isinstance(unless_raw, list) or not all(u in MATCHES for u in unless_raw):
            raise self.fail(f"{where}.unless", f"must be a list of: {', '.join(MATCHES)}")
        reasons = []
        for key in ("reason", "reason_en"):
            reason = item.get(key, "")
            if not isinstance(reason, str):
                raise self.fail(f"{where}.{key}", "must be a string")
            self.template(reason, f"{where}.{key}")
            reasons.append(reason)
        return Rule(rule_id, colour, match, statuses, responsible, tuple(unless_raw), *reasons)

    def choice(
        self,
        item: dict[str, Any],
        key: str,
        where: str,
        allowed: tuple[str, ...],
        default: str = "",
    ) -> str:
        value = item.get(key, default)
        if value not in allowed:
            raise self.fail(_join(where, key), f"{value!r} is not one of: {', '.join(allowed)}")
        return str(value)

    def template(self, text: str, key: str) -> None:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
        except ValueError as err:
            raise self.fail(key, f"bad template ({err})") from None
        for name in fields:
            if name not in PLACEHOLDERS:
                raise self.fail(
                    key, f"unknown placeholder {{{name}}} (known: {_names(PLACEHOLDERS)})"
                )

    def texts(self, table: Any) -> dict[str, str]:
        if not isinstance(table, dict):
            raise self.fail("texts", "must be a table")
        keys = {"not_found", "no_rule"}
        self.keys(table, "texts", set(), keys | {f"{k}_en" for k in keys})
        out: dict[str, str] = {}
        for key in sorted(keys):
            for suffix in ("", "_en"):
                if key + suffix in table:
                    out[f"{key}_reason{suffix}"] = self.text(table, key + suffix, "texts")
        return out


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _names(values: Any) -> str:
    return ", ".join(sorted(values))
