"""Phone numbers as people type them -> one canonical key (E.164).

``8 916 000-11-22``, ``+7 (916) 000-11-22``, ``79160001122`` and ``9160001122`` are one number
in region RU; extensions (``доб. 12``, ``ext. 12``, ``#12``) are ignored, as Bitrix24's duplicate
search ignores them. A string that is not a phone number raises :class:`InvalidPhone`;
nothing is guessed.
"""

from __future__ import annotations

import re

import phonenumbers

DEFAULT_REGION = "RU"
MAX_INPUT = 64

# An extension marker and its digits at the end: "доб. 12", "доп 12", "ext. 12", "x12", "#12".
_EXTENSION = re.compile(
    r"\s*(?:,|;)?\s*(?:доб(?:авочный)?|доп|ext(?:ension)?|x|#)\.?\s*\d{1,6}\s*$",
    re.IGNORECASE,
)
# ASCII digits and the separators people type; "+" only in front.
_ALLOWED = re.compile(r"^\+?[0-9 \t()\-./]+$")


class InvalidPhone(ValueError):
    """The text is not a phone number. ``str(err)`` is one line fit for a user."""


def strip_extension(text: str) -> str:
    return _EXTENSION.sub("", text)


def normalize(text: str, region: str = DEFAULT_REGION) -> str:
    """Return the E.164 key of ``text`` (``+79160001122``) or raise :class:`InvalidPhone`."""
    if not isinstance(text, str):
        raise InvalidPhone(f"phone must be a string, not {type(text).__name__}")
    raw = text.strip()
    if not raw:
        raise InvalidPhone("phone is empty")
    if len(raw) > MAX_INPUT:
        raise InvalidPhone(f"phone is too long ({len(raw)} characters, at most {MAX_INPUT})")
    body = strip_extension(raw).strip()
    if not body or not _ALLOWED.match(body) or not any(ch in "0123456789" for ch in body):
        raise InvalidPhone(f"{raw!r} is not a phone number")
    if body.startswith("00"):
        # International prefix used in Europe and Russia ("00 49 ...").
        body = "+" + body[2:].lstrip()
    try:
        number = phonenumbers.parse(body, region.upper())
    except phonenumbers.NumberParseException as err:
        raise InvalidPhone(f"{raw!r} is not a phone number ({_parse_reason(err)})") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhone(f"{raw!r} is not a phone number (wrong number of digits)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def try_normalize(text: str, region: str = DEFAULT_REGION) -> str | None:
    """``normalize`` for stored CRM data: a malformed stored phone matches nothing."""
    try:
        return normalize(text, region)
    except InvalidPhone:
        return None


def masked(phone: str) -> str:
    """A number for logs and reports: its last 4 digits only (``****4567``), never the whole."""
    digits = [c for c in phone if c.isdigit()]
    return "****" + "".join(digits[-4:]) if len(digits) > 4 else "****"


def check_region(region: str) -> str:
    """Validate a region code (``RU``, ``DE``); raise ValueError naming the allowed form."""
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown phone region {region!r} (expected an ISO 3166 code such as RU)")
    return code


def _parse_reason(err: phonenumbers.NumberParseException) -> str:
    reasons = {
        phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
        phonenumbers.NumberParseException.NOT_A_NUMBER: "not a number",
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
        phonenumbers.NumberParseException.TOO_LONG: "too long",
    }
    return reasons.get(err.error_type, "not a number")
