"""``batch``: up to 50 sub-requests ``"method?query"`` run in order, with ``$result`` references
(reference/bitrix24.md §6.4).

A reference ``$result[key][0][ID]`` names an earlier command's result and a path into it. A
value that is one whole reference takes the referenced value as it is (a list stays a list); a
reference inside a longer string is replaced by its text. A reference that does not resolve
becomes an empty string, which a list filter then drops (the "reference quirk" callers must
guard against: keep only rows whose ids were asked for).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from gateway.tools.fakeportal.methods import Reply, arg
from gateway.tools.fakeportal.store import RestError, parse_params

MAX_COMMANDS = 50
_REF = re.compile(r"\$result((?:\[[^\]]*\])+)")
_PART = re.compile(r"\[([^\]]*)\]")

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
            reply = execute(method, _resolve(parse_params(query), results))
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


def _resolve(value: Any, results: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, results) for v in value]
    if not isinstance(value, str) or "$result" not in value:
        return value
    whole = _REF.fullmatch(value)
    if whole:
        found = _lookup(whole.group(1), results)
        return "" if found is None else found
    return _REF.sub(lambda m: _scalar(_lookup(m.group(1), results)), value)


def _lookup(path: str, results: dict[str, Any]) -> Any:
    node: Any = results
    for part in _PART.findall(path):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _scalar(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return "1" if value else ""
    return str(value)
