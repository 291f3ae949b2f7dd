"""PHP-style bracket keys: ``filter[PHONE]=1&values[]=a`` <-> nested dicts and lists.

Bitrix24 reads form bodies, query strings and batch sub-queries the way PHP's ``parse_str`` does,
and sends its outgoing-webhook events the same way (reference/bitrix24.md §2.4, §6.1). Shared by
the REST client (batch sub-queries), the fake portal and the events handler.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

_KEY = re.compile(r"^([^\[]+)((?:\[[^\]]*\])*)$")
_PART = re.compile(r"\[([^\]]*)\]")


def parse_query(text: str) -> dict[str, Any]:
    """``a[b][]=1&a[b][]=2&c=3`` -> ``{"a": {"b": ["1", "2"]}, "c": "3"}`` (all leaves strings)."""
    return build_nested(parse_qsl(text, keep_blank_values=True))


def build_nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw_key, value in pairs:
        match = _KEY.match(raw_key)
        if not match:
            out[raw_key] = value
            continue
        path = [match.group(1), *_PART.findall(match.group(2))]
        _put(out, path, value)
    return {k: _listify(v) for k, v in out.items()}


def _put(node: dict[str, Any], path: list[str], value: str) -> None:
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if part == "":
            # PHP's "[]" appends: number the new slot after the highest integer key so far.
            part = str(1 + max((int(k) for k in node if k.isdigit()), default=-1))
        if last:
            node[part] = value
            return
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child


def _listify(value: Any) -> Any:
    """A PHP array whose keys are 0..n-1 becomes a list, as json_encode would render it."""
    if not isinstance(value, dict):
        return value
    items = {k: _listify(v) for k, v in value.items()}
    if items and list(items) == [str(i) for i in range(len(items))]:
        return list(items.values())
    return items


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """The inverse: nested dicts/lists -> bracket-key pairs (lists get explicit indexes)."""
    if isinstance(value, dict):
        pairs: list[tuple[str, str]] = []
        for key, item in value.items():
            pairs += flatten(item, f"{prefix}[{key}]" if prefix else str(key))
        return pairs
    if isinstance(value, list | tuple):
        pairs = []
        for i, item in enumerate(value):
            pairs += flatten(item, f"{prefix}[{i}]")
        return pairs
    if value is None:
        return [(prefix, "")]
    if isinstance(value, bool):
        return [(prefix, "1" if value else "0")]  # as PHP's http_build_query
    return [(prefix, str(value))]


def encode_form(value: dict[str, Any]) -> str:
    return urlencode(flatten(value))
