"""A Bitrix24 user id, checked the same way wherever one enters the gateway.

Tokens (``sub``), ``POST /api/calls``, the portal's events, ``callguard token --user`` and the
settings all go through :func:`user_id`. Bitrix24 numbers users from 1, so an id is ASCII digits
without a leading zero: ``str.isdigit()`` is not enough (``"８"`` and ``"٨"`` are digits to it), and
``"08"`` must not become a second identity of user 8.
"""

from __future__ import annotations

import re

# 18 digits fit a signed 64-bit integer; Bitrix24 ids are far shorter.
MAX_DIGITS = 18
_CANONICAL = re.compile(rf"[1-9][0-9]{{0,{MAX_DIGITS - 1}}}", re.ASCII)


class InvalidUserId(ValueError):
    """Not a Bitrix24 user id; ``str(err)`` says what one looks like."""


def user_id(value: object) -> str:
    """``value`` as a user id string (``7`` or ``"7"`` -> ``"7"``), or :class:`InvalidUserId`.

    Surrounding whitespace is dropped (form fields, command lines); an int is accepted as JSON
    sends it, a bool is not.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        text = None
    if text is None or _CANONICAL.fullmatch(text) is None:
        shown = repr(value)[:40]
        raise InvalidUserId(
            f"a user id is ASCII digits from 1, without leading zeros (e.g. 7), got {shown}"
        )
    return text


def is_user_id(value: object) -> bool:
    try:
        user_id(value)
    except InvalidUserId:
        return False
    return True
