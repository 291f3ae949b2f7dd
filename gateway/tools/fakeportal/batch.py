"""``batch``: up to 50 sub-requests ``"method?query"`` run in order, with ``$result`` references
(reference/bitrix24.md §6.4, §8a).

References are resolved as the rest module does (``CRestUtil::processBatchElement``,
``classes/general/rest_util.php``): each parameter value is searched for ``$result``, ``$next``,
``$total``, ``$time`` or ``$error`` followed by everything up to the next whitespace; the ``[key]``
parts of that text are walked from the named answer map, and **the walk stops at the first key
that is not set (missing or null) and keeps the node reached so far**. Then:

- the match is the whole value: the value becomes that node, whatever its type (a list stays a
  list; an unresolved path gives the parent, e.g. the whole answer list);
- the match is embedded in a longer value: it is replaced by the node only if the node is a
  string or ``is_numeric`` (numbers as strings); otherwise the literal text stays. Note that the
  match runs to the next whitespace, so ``$result[a][ID],x`` is replaced whole.

Keys of parameters are not resolved here (the real module runs them through the same function
with no answer names, which turns a ``$``-key into an empty one; nothing we send does that).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from gateway.tools.fakeportal.methods import Reply, arg
from gateway.tools.fakeportal.store import RestError, parse_params

MAX_COMMANDS = 50

Execute = Callable[[str, dict[str, Any]], Reply]


def run_batch(params: dict[str, Any], execute: Execute) -> Reply:
    cmd = arg(params, "cmd")
    if isinstance(cmd, list):
        commands = {str(i): c for i, c in enumerate(cmd)}
    elif isinstance(cmd, dict):
        commands = {str(k): c for k, c in cmd.items()}
    else:
        raise RestError(400, "ERROR_BATCH_CMD", "cmd must be an array of commands")  # UNCONFIRMED
    if len(commands) > MAX_COMMANDS:
        raise RestError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
    halt = str(arg(params, "halt", "0")).lower() in ("1", "true", "y")
    results: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    totals: dict[str, Any] = {}
    nexts: dict[str, Any] = {}
    times: dict[str, Any] = {}
    for key, text in commands.items():
        method, _, query = str(text).partition("?")
        method = method.strip().lower().removesuffix(".json")
        started = time.time()
        try:
            if method == "batch":
                raise RestError(
                    405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"
                )
            answers = {
                "result": results,
                "next": nexts,
                "total": totals,
                "time": times,
                "error": errors,
            }
            reply = execute(method, resolve(parse_params(query), answers))
        except RestError as err:
            errors[key] = {"error": err.error, "error_description": err.description}
            if halt:
                break
            continue
        results[key] = reply.result
        if reply.total is not None:
            totals[key] = reply.total
        if reply.next is not None:
            nexts[key] = reply.next
        times[key] = time_block(started)
    return Reply(
        {
            "result": php_array(results),
            "result_error": php_array(errors),
            "result_total": php_array(totals),
            "result_next": php_array(nexts),
            "result_time": php_array(times),
        }
    )


def php_array(items: dict[str, Any]) -> Any:
    """PHP's json_encode: an empty array is ``[]``, keys 0..n-1 make a list, others an object."""
    if list(items) == [str(i) for i in range(len(items))]:
        return list(items.values())
    return items


def time_block(started: float) -> dict[str, Any]:
    finished = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(finished))
    return {
        "start": started,
        "finish": finished,
        "duration": finished - started,
        "processing": finished - started,
        "date_start": stamp,
        "date_finish": stamp,
        "operating_reset_at": int(finished) + 600,
        "operating": 0,
    }


_NAMES = ("result", "next", "total", "time", "error")
_MATCH = re.compile(r"\$(" + "|".join(_NAMES) + r")(\S*)", re.IGNORECASE)
_KEY = re.compile(r"\[([^\]]+)\]")
_PHP_INT = re.compile(r"^(0|-?[1-9][0-9]*)$")
_PHP_NUMERIC = re.compile(
    r"^[ \t\n\r\v\f]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t\n\r\v\f]*$"
)


def resolve(value: Any, answers: dict[str, Any]) -> Any:
    """A parameter value after reference resolution; ``answers`` maps ``result``, ``next``,
    ``total``, ``time`` and ``error`` to the maps built so far."""
    if isinstance(value, dict):
        return {k: resolve(v, answers) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, answers) for v in value]
    if not isinstance(value, str):
        return value
    query: Any = value
    for match in _MATCH.finditer(value):
        keys = _KEY.findall(match.group(2))
        if not keys:
            continue
        # PHP's $arResult[$name]: the names are lower case, a /i match of "$RESULT" finds none.
        node = walk(answers.get(match.group(1)), keys)
        if match.group(0) == query:
            query = node
            continue
        if is_numeric(node):
            node = php_string(node)
        if not isinstance(node, str) or not isinstance(query, str):
            continue
        query = query.replace(match.group(0), node)
    return query


def walk(node: Any, keys: list[str]) -> Any:
    """``while (isset($r[$key])) $r = $r[$key];`` — stop at the first key that is not set."""
    for key in keys:
        child = _child(node, key)
        if child is None:
            break
        node = child
    return node


def _child(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list):
        if _PHP_INT.match(key) and 0 <= int(key) < len(node):
            return node[int(key)]
        return None
    if isinstance(node, str) and _PHP_INT.match(key):
        index = int(key)  # isset($string[$i]): a string offset, negative from the end
        return node[index] if -len(node) <= index < len(node) else None
    return None


def is_numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and _PHP_NUMERIC.match(value) is not None


def php_string(value: Any) -> str:
    """PHP's ``(string)`` of a number or numeric string."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)
