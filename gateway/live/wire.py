"""Websocket messages as typed values (design.md §3.4): strict, bounded decode and orjson encode.

Client frames decode into :class:`CallFrame`, :class:`EndedFrame` or :class:`AppliedFrame`, or
raise :class:`WireError` whose ``code`` goes back to the client in an ``error`` message. Keys a
frame does not define are ignored, so a newer snippet can talk to an older gateway; the types and
sizes of the keys we read are checked. Server frames are built here and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from gateway.live.decisions import PerDecision
from rules.model import Decision
from rules.policy import LANGS

Direction = Literal["in", "out"]
DIRECTIONS: tuple[Direction, ...] = ("in", "out")
MAX_CALL_ID = 128
MAX_PHONE = 64
MAX_SEQ = 2**53
MAX_LATENCY_MS = 3_600_000.0

# Error codes sent to the client (``error.code``).
TOO_LARGE = "frame_too_large"
INVALID_JSON = "invalid_json"
INVALID_MESSAGE = "invalid_message"
UNKNOWN_TYPE = "unknown_type"
INVALID_PHONE = "invalid_phone"
RATE_LIMITED = "rate_limited"
BUSY = "busy"  # the user's (or the gateway's) calls in flight are at their bound: send it later


class WireError(ValueError):
    """A client frame we cannot use; ``code`` is one of the error codes above."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class CallFrame:
    call_id: str
    phone: str
    direction: Direction = "in"


@dataclass(frozen=True, slots=True)
class EndedFrame:
    call_id: str


@dataclass(frozen=True, slots=True)
class AppliedFrame:
    call_id: str
    seq: int
    latency_ms: float | None = None  # ring -> applied, measured in the page (an extension)


ClientFrame = CallFrame | EndedFrame | AppliedFrame


def decode(frame: str | bytes, max_frame: int) -> ClientFrame:
    """One client text frame -> a typed value, or :class:`WireError`."""
    if isinstance(frame, bytes):
        raise WireError(INVALID_MESSAGE, "binary frames are not accepted: send JSON text")
    # surrogatepass: a lone surrogate is counted, not raised as UnicodeEncodeError; orjson then
    # refuses it as invalid JSON (a socket delivers only UTF-8, but decode() takes any str).
    size = len(frame)
    if size > max_frame or (
        size * 4 > max_frame and len(frame.encode("utf-8", "surrogatepass")) > max_frame
    ):
        raise WireError(TOO_LARGE, f"frame larger than {max_frame} bytes")
    try:
        doc = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise WireError(INVALID_JSON, "frame is not valid JSON") from None
    if not isinstance(doc, dict):
        raise WireError(INVALID_MESSAGE, "frame must be a JSON object with a 'type'")
    kind = doc.get("type")
    if kind == "call":
        direction = doc.get("direction", "in")
        if direction not in DIRECTIONS:
            raise WireError(INVALID_MESSAGE, '\'direction\' must be "in" or "out"')
        return CallFrame(
            _text(doc, "call_id", MAX_CALL_ID), _text(doc, "phone", MAX_PHONE), direction
        )
    if kind == "ended":
        return EndedFrame(_text(doc, "call_id", MAX_CALL_ID))
    if kind == "applied":
        latency = doc.get("latency_ms")
        if latency is not None and not _number(latency, MAX_LATENCY_MS):
            raise WireError(INVALID_MESSAGE, "'latency_ms' must be a number of milliseconds")
        return AppliedFrame(_text(doc, "call_id", MAX_CALL_ID), _seq(doc), latency)
    if not isinstance(kind, str):
        raise WireError(INVALID_MESSAGE, "frame must have a string 'type'")
    raise WireError(
        UNKNOWN_TYPE, f"unknown message type {kind[:32]!r} (known: call, ended, applied)"
    )


def check_call_id(value: object) -> str:
    """A call id as the wire and ``POST /api/calls`` accept it."""
    return _text({"call_id": value}, "call_id", MAX_CALL_ID)


def _text(doc: dict[str, Any], key: str, limit: int) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip():
        raise WireError(INVALID_MESSAGE, f"'{key}' must be a non-empty string")
    if len(value) > limit:
        raise WireError(INVALID_MESSAGE, f"'{key}' is longer than {limit} characters")
    return value.strip()


def _seq(doc: dict[str, Any]) -> int:
    value = doc.get("seq")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        raise WireError(INVALID_MESSAGE, "'seq' must be a whole number")
    return value


def _number(value: object, limit: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and 0 <= value <= limit


def hello(user_id: str, heartbeat: float, version: str) -> str:
    return _dump({"type": "hello", "user_id": user_id, "heartbeat": heartbeat, "version": version})


PAINT_START = '{"type":"paint"'  # how every paint frame begins (its first key comes first)


def paint(call_id: str, seq: int, decision: Decision, lang: str = "ru") -> str:
    """The paint of one call; ``text`` in ``lang`` only, ``owner`` and ``entity`` when a rule
    matched something (design.md §3.7): the snippet links them to their portal pages. The
    call's own fields first, then the decision's, made once per decision and language: building
    them was a third of the Python a warm call's paint took (bytecodes counted)."""
    head = _dump({"type": "paint", "call_id": call_id, "seq": seq})
    return head[:-1] + "," + _decision_parts.get(decision, lang)[1:]  # two JSON objects, joined


def _decision_part(decision: Decision, lang: str) -> str:
    """The decision's fields of a paint frame, as a JSON object."""
    doc: dict[str, object] = {
        "colour": decision.colour,
        "background": decision.background,
        "rule": decision.rule,
        "text": decision.text(lang),
    }
    if decision.owner is not None:
        doc["owner"] = {"id": decision.owner.id, "name": decision.owner.name}
    if decision.subject is not None:
        s = decision.subject
        doc["entity"] = {"type": s.kind, "id": s.id, "title": s.title, "status": s.status_in(lang)}
    return _dump(doc)


_decision_parts: PerDecision[str] = PerDecision(_decision_part)


def lang_of(value: str | None, default: str) -> str:
    """A tab's language from its ``lang`` (``ru``, ``en-US``, ...); the default for others."""
    base = (value or "").strip().lower()[:2]
    return base if base in LANGS else default


def clear(call_id: str) -> str:
    return _dump({"type": "clear", "call_id": call_id})


def token(value: str, expires_at: int) -> str:
    """A renewed connection token for the tab's next reconnects (design.md §3.7)."""
    return _dump({"type": "token", "token": value, "expires_at": expires_at})


def error(code: str, message: str) -> str:
    return _dump({"type": "error", "code": code, "message": message})


def _dump(doc: dict[str, object]) -> str:
    return orjson.dumps(doc).decode()
