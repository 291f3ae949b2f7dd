"""Connection tokens: JWT HS256 (design.md §3.4).

``sub`` is the Bitrix24 user id as a string of digits and ``exp`` is required. Only HS256 is
accepted: a token signed with any other algorithm (``none`` included) is refused, whatever its
header claims, so a client cannot pick the verification method.
"""

from __future__ import annotations

import time

import jwt

ALGORITHM = "HS256"
DEFAULT_TTL = 12 * 3600.0


class TokenError(Exception):
    """A token that does not authenticate a connection; ``str(err)`` says why, without secrets."""


def issue_token(
    secret: str, user_id: str, ttl: float = DEFAULT_TTL, now: float | None = None
) -> str:
    """A token for ``user_id`` valid for ``ttl`` seconds."""
    user_id = str(user_id).strip()
    if not user_id.isdigit():
        raise ValueError(f"user id must be a Bitrix24 user id (digits), not {user_id!r}")
    if ttl <= 0:
        raise ValueError(f"ttl must be positive, got {ttl!r}")
    issued = time.time() if now is None else now
    claims = {"sub": user_id, "iat": int(issued), "exp": int(issued + ttl)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str | None) -> str:
    """The user id a valid token names; :class:`TokenError` for anything else."""
    if not token:
        raise TokenError("missing token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise TokenError("malformed token") from None
    if header.get("alg") != ALGORITHM:
        raise TokenError(f"token algorithm must be {ALGORITHM}")
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.InvalidSignatureError:
        raise TokenError("token signature does not match") from None
    except jwt.InvalidTokenError as err:
        raise TokenError(f"invalid token: {err}") from None
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub.isdigit():
        raise TokenError("token subject must be a user id (digits)")
    return sub
