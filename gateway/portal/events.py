"""Bitrix24 outgoing-webhook bodies as typed values: pure parsing, no I/O (reference §1-§3.6).

The portal POSTs ``application/x-www-form-urlencoded`` bodies with PHP bracket keys
(``data[FIELDS][ID]=82&auth[application_token]=...``). :func:`parse_form` rebuilds the nesting,
:func:`check_token` verifies the outgoing webhook's application token in constant time, and
:func:`parse_event` turns the known events into small frozen values.

Exceptions::

    EventError
     ├── MalformedBody   the body is not a form we accept (-> HTTP 400)
     └── BadToken        auth[application_token] missing or wrong (-> HTTP 401)
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Literal

from gateway.crm import forms
from gateway.crm.forms import Form
from gateway.userid import is_user_id, user_id

MAX_BODY = 64 * 1024  # real event bodies are well under 2 kB
MAX_FIELDS = 200
MAX_DEPTH = 8

EntityKind = Literal["company", "contact", "lead"]
Action = Literal["add", "update", "delete"]


class EventError(Exception):
    """A request the handler refuses; ``str(err)`` is one line for the log and the response."""


class MalformedBody(EventError):
    pass


class BadToken(EventError):
    pass


@dataclass(frozen=True, slots=True)
class CallInit:
    """A call was initialised; ``phone`` is the client's number as the portal sent it."""

    call_id: str
    phone: str
    direction: Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class CallStart:
    call_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class CallEnd:
    call_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class CrmChange:
    kind: EntityKind
    action: Action
    entity_id: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """An event this gateway does not handle: answered 200 and ignored."""

    name: str


PortalEvent = CallInit | CallStart | CallEnd | CrmChange | Unknown

CRM_EVENTS: dict[str, tuple[EntityKind, Action]] = {
    f"ONCRM{kind.upper()}{action.upper()}": (kind, action)
    for kind in ("company", "contact", "lead")
    for action in ("add", "update", "delete")
}
CALL_EVENTS = ("ONVOXIMPLANTCALLINIT", "ONVOXIMPLANTCALLSTART", "ONVOXIMPLANTCALLEND")
HANDLED_EVENTS = (*CALL_EVENTS, *CRM_EVENTS)


def parse_form(body: bytes) -> Form:
    """The event's form (:func:`gateway.crm.forms.parse_form`), bounded: at most
    :data:`MAX_BODY` bytes, :data:`MAX_FIELDS` fields, :data:`MAX_DEPTH` levels."""
    if len(body) > MAX_BODY:
        raise MalformedBody(f"body too large ({len(body)} bytes, at most {MAX_BODY})")
    try:
        return forms.parse_form(body.decode("utf-8"), max_fields=MAX_FIELDS, max_depth=MAX_DEPTH)
    except UnicodeDecodeError:
        raise MalformedBody("body is not URL-encoded UTF-8") from None
    except forms.FormError as err:
        raise MalformedBody(str(err)) from None


def check_token(form: Form, expected: str) -> None:
    """Raise :class:`BadToken` unless ``auth[application_token]`` equals ``expected``."""
    auth = form.get("auth")
    token = auth.get("application_token") if isinstance(auth, dict) else None
    if not isinstance(token, str) or not token:
        raise BadToken("auth[application_token] is missing")
    # compare_digest on bytes: constant time whatever the text, and no TypeError on non-ASCII.
    if not hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8")):
        raise BadToken("auth[application_token] does not match CALLGUARD_WEBHOOK_TOKEN")


def event_name(form: Form) -> str:
    name = form.get("event")
    if not isinstance(name, str) or not name.strip():
        raise MalformedBody("the form has no 'event' field")
    return name.strip().upper()


def parse_event(form: Form) -> PortalEvent:
    """The typed event for a verified form; :class:`Unknown` for events we do not handle."""
    name = event_name(form)
    if name not in HANDLED_EVENTS:
        return Unknown(name)
    data = form.get("data")
    if not isinstance(data, dict):
        raise MalformedBody(f"{name}: the form has no data[...] fields")
    if name in CRM_EVENTS:
        kind, action = CRM_EVENTS[name]
        fields = data.get("FIELDS")
        entity = _ident(fields.get("ID") if isinstance(fields, dict) else None, name, "FIELDS][ID")
        return CrmChange(kind, action, entity)
    call_id = _text(data, "CALL_ID", name)
    if name == "ONVOXIMPLANTCALLINIT":
        # The client's number: PHONE_NUMBER on outgoing calls (CALL_TYPE 1), else CALLER_ID;
        # calls registered by a telephony app carry no PHONE_NUMBER at all (reference §1.3).
        outgoing = data.get("CALL_TYPE") == "1"
        key = "PHONE_NUMBER" if outgoing and _present(data, "PHONE_NUMBER") else "CALLER_ID"
        return CallInit(call_id, _text(data, key, name), "out" if outgoing else "in")
    if name == "ONVOXIMPLANTCALLSTART":
        return CallStart(call_id, _ident(data.get("USER_ID"), name, "USER_ID"))
    return CallEnd(call_id, _ident(data.get("PORTAL_USER_ID"), name, "PORTAL_USER_ID"))


# The same bounds as a tab's frames (gateway/live/wire.py): a call id is kept and sent to tabs.
_MAX_TEXT = {"CALL_ID": 128, "CALLER_ID": 64, "PHONE_NUMBER": 64}


def _text(data: Form, key: str, name: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MalformedBody(f"{name}: data[{key}] is missing")
    limit = _MAX_TEXT.get(key, 128)
    if len(value.strip()) > limit:
        raise MalformedBody(f"{name}: data[{key}] is longer than {limit} characters")
    return value.strip()


def _present(data: Form, key: str) -> bool:
    value = data.get(key)
    return isinstance(value, str) and bool(value.strip())


def _ident(value: Any, name: str, key: str) -> str:
    # User and CRM entity ids are both Bitrix24 ids from 1: one rule (gateway/userid.py), so
    # "08" or "٨" never names a second user or company. A form field is always text.
    if not isinstance(value, str) or not is_user_id(value):
        raise MalformedBody(f"{name}: data[{key}] must be a numeric id, got {value!r}"[:200])
    return user_id(value)
