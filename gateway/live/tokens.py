"""Connection tokens: JWT HS256 (design.md §3.4, §3.7).

``sub`` is the Bitrix24 user id (:func:`gateway.userid.user_id`) and ``exp`` is required. Only
HS256 is accepted: a token signed with any other algorithm (``none`` included) is refused, whatever
its header claims, so a client cannot pick the verification method.

The time claims are checked here rather than by PyJWT, so that every one of them is a real
number (PyJWT takes ``"exp": "9999999999"`` and ``true``), the clock skew allowed is one setting
(``leeway``, 60 s by default: a portal whose clock runs a little ahead still connects) and a
token's lifetime is known: a renewal (:mod:`gateway.live.renewals`) gets the same one.

Lifetime is ``exp - iat``. A token without ``iat`` (hand-made ones) counts its lifetime from the
moment it is checked: ``exp - now``, at least :data:`MIN_LIFETIME` so a token accepted within the
leeway after its ``exp`` still renews into a usable one. Either way a lifetime above ``max_ttl``
is refused: a token valid for years is a password that never changes.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import jwt

from gateway.userid import InvalidUserId, user_id

ALGORITHM = "HS256"
DEFAULT_TTL = 12 * 3600.0
LEEWAY = 60.0
MAX_TTL = 24 * 3600.0
MIN_LIFETIME = 60
TIME_CLAIMS = ("exp", "iat", "nbf")


class TokenError(Exception):
    """A token that does not authenticate a connection; ``str(err)`` says why, without secrets."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a valid token names, and for how long it was made."""

    user_id: str
    expires_at: float  # the token's exp, unix seconds
    issued_at: float  # its iat (or the moment it was checked, without one)
    lifetime: int  # whole seconds; a renewed token lives as long


def issue_token(secret: str, user: str, ttl: float = DEFAULT_TTL, now: float | None = None) -> str:
    """A token for ``user`` valid for ``ttl`` seconds (whole seconds, as ``iat``/``exp`` are)."""
    try:
        sub = user_id(user)
    except InvalidUserId as err:
        raise ValueError(f"user id: {err}") from None
    if not ttl > 0:
        raise ValueError(f"ttl must be positive, got {ttl!r}")
    issued = time.time() if now is None else now
    claims = {"sub": sub, "iat": int(issued), "exp": int(issued) + max(1, int(ttl))}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def check_token(
    secret: str,
    token: str | None,
    *,
    leeway: float = LEEWAY,
    max_ttl: float = MAX_TTL,
    now: float | None = None,
) -> Identity:
    """The identity a valid token names; :class:`TokenError` for anything else."""
    if not token:
        raise TokenError("missing token")
    if not token.isascii():  # a JWT is base64url and dots; PyJWT would raise on a lone surrogate
        raise TokenError("malformed token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise TokenError("malformed token") from None
    if header.get("alg") != ALGORITHM:
        raise TokenError(f"token algorithm must be {ALGORITHM}")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            # Only the signature and presence here; the types and times are checked below.
            options={
                "require": ["exp", "sub"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_sub": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise TokenError("token signature does not match") from None
    except jwt.InvalidTokenError as err:
        raise TokenError(f"invalid token: {err}") from None
    times = {name: _seconds(claims, name) for name in TIME_CLAIMS if name in claims}
    sub = claims["sub"]
    if not isinstance(sub, str):  # a JSON number is not the string design.md §3.4 asks for
        raise TokenError("token subject must be a user id string")
    try:
        who = user_id(sub)
    except InvalidUserId as err:
        raise TokenError(f"token subject: {err}") from None
    clock = time.time() if now is None else now
    exp = times["exp"]
    if clock > exp + leeway:
        raise TokenError("token expired")
    if "nbf" in times and clock + leeway < times["nbf"]:
        raise TokenError("token not valid yet (nbf)")
    if "iat" in times:
        issued = times["iat"]
        if issued > clock + leeway:
            raise TokenError("token issued in the future (iat): check the portal's clock")
        lifetime = exp - issued
        if lifetime <= 0:
            raise TokenError("token expires before it was issued (exp <= iat)")
    else:
        issued = clock
        lifetime = exp - clock
    if lifetime > max_ttl:
        raise TokenError(
            f"token lifetime is longer than {max_ttl:g} s (CALLGUARD_TOKEN_MAX_TTL): "
            "issue tokens for a working day at most"
        )
    whole = max(1, int(lifetime)) if "iat" in times else max(MIN_LIFETIME, math.ceil(lifetime))
    return Identity(who, exp, issued, min(whole, int(max_ttl)))


def verify_token(secret: str, token: str | None, **limits: float) -> str:
    """The user id a valid token names; :class:`TokenError` for anything else."""
    return check_token(secret, token, **limits).user_id


def _seconds(claims: dict[str, object], name: str) -> float:
    value = claims[name]
    number = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # an integer of hundreds of digits
            number = float(value)
    if not math.isfinite(number):
        raise TokenError(f"token claim {name!r} must be a number of seconds")
    return number
