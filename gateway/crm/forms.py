"""PHP-style bracket keys: ``filter[PHONE]=1&values[]=a`` <-> nested dicts and lists.

Bitrix24 reads form bodies, query strings and batch sub-queries the way PHP's ``parse_str`` does,
and sends its outgoing-webhook events the same way (reference/bitrix24.md §2.4, §6.1). One parser
serves the events intake, the fake portal and its batch: :func:`parse_form`, strict and bounded.
Where PHP would guess (a repeated plain key, a key used both as a value and as a container) it
raises :class:`FormError`: a real portal never sends either.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

Form = dict[str, Any]

# name, then any number of [segment]; a segment may be empty (PHP's "append": a[]=1&a[]=2).
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """A form this parser refuses; ``str(err)`` is one line saying why."""


def parse_form(text: str, *, max_fields: int, max_depth: int) -> Form:
    """``a[b][c]=1&a[b][d]=2`` -> ``{"a": {"b": {"c": "1", "d": "2"}}}``; ``a[]=`` appends.

    At most ``max_fields`` fields and ``max_depth`` levels. Named segments make dicts (``a[0]``
    too: see :func:`listify`), empty ones lists.
    """
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            encoding="utf-8",
            errors="strict",
            max_num_fields=max_fields,
        )
    except UnicodeDecodeError:
        raise FormError("body is not URL-encoded UTF-8") from None
    except ValueError as err:
        raise FormError(f"body is not a form: {err}") from None
    form: Form = {}
    for key, value in pairs:
        _put(form, _path(key, max_depth), value, key)
    return form


def parse_query(text: str, *, max_fields: int = 10_000, max_depth: int = 16) -> Form:
    """A query string or form body as PHP hands it to a REST method: :func:`parse_form`, then
    :func:`listify` (what json_encode does to arrays keyed 0..n-1)."""
    return {
        k: listify(v)
        for k, v in parse_form(text, max_fields=max_fields, max_depth=max_depth).items()
    }


def _path(key: str, max_depth: int) -> list[str]:
    match = _KEY.match(key)
    if match is None:
        raise FormError(f"bad form key {key!r}")
    path = [match.group(1), *_SEGMENT.findall(match.group(2))]
    if len(path) > max_depth:
        raise FormError(f"form key {key!r} is nested deeper than {max_depth} levels")
    return path


def _put(form: Form, path: list[str], value: str, key: str) -> None:
    # The container for each segment is chosen by the segment after it ("" -> list), so a list
    # is only ever reached through an empty segment and a dict through a named one.
    node: Any = form
    for i, segment in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            if last:
                node.append(value)
                return
            child: Any = [] if path[i + 1] == "" else {}
            node.append(child)
            node = child
            continue
        if last:
            if segment in node:
                raise FormError(f"form key {key!r} is given twice")
            node[segment] = value
            return
        want_list = path[i + 1] == ""
        child = node.setdefault(segment, [] if want_list else {})
        if isinstance(child, str) or isinstance(child, list) != want_list:
            raise FormError(f"form key {key!r} conflicts with an earlier key")
        node = child


def listify(value: Any) -> Any:
    """A PHP array whose keys are 0..n-1 becomes a list, as json_encode would render it."""
    if isinstance(value, list):
        return [listify(v) for v in value]
    if not isinstance(value, dict):
        return value
    items = {k: listify(v) for k, v in value.items()}
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
