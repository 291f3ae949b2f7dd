"""The OAuth ``state``: a signed, short-lived, single-use nonce bound to the browser that asked.

``state`` = ``nonce.expires.signature`` (HMAC-SHA256 under a key derived from CALLGUARD_SECRET),
so any gateway process can check it without shared storage. The same nonce goes into a cookie on
``/auth/start``: a state that comes back from another browser (a sign-in link someone was sent)
is refused. Used nonces are remembered until they expire, at most ``capacity`` of them; when that
many sign-ins are under way inside one lifetime, new callbacks are refused (:class:`Busy`) rather
than forgetting a nonce that could then be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

COOKIE = "callguard_signin"


class StateError(Exception):
    """A state that does not start a callback; ``str(err)`` says why (no secrets in it)."""


class Busy(Exception):
    """Too many sign-ins under way to remember another used state."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class States:
    def __init__(
        self,
        secret: str,
        ttl: float,
        capacity: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = hmac.new(secret.encode(), b"callguard oauth state", hashlib.sha256).digest()
        self.ttl = ttl
        self.capacity = capacity
        self._clock = clock
        self._used: dict[str, float] = {}  # nonce -> when it expires

    def issue(self) -> tuple[str, str]:
        """A new ``(state, nonce)``: the state goes to the portal, the nonce into the cookie."""
        nonce = _b64(secrets.token_bytes(16))
        body = f"{nonce}.{int(self._clock() + self.ttl)}"
        return f"{body}.{self._sign(body)}", nonce

    def take(self, state: str | None, cookie: str | None) -> None:
        """Accept ``state`` once; :class:`StateError` if it is not good, :class:`Busy` if full."""
        if not state:
            raise StateError("the sign-in has no state: start again from /auth/start")
        nonce, _, rest = state.partition(".")
        expires, _, signature = rest.partition(".")
        if not expires.isdigit() or not hmac.compare_digest(
            signature.encode(), self._sign(f"{nonce}.{expires}").encode()
        ):
            raise StateError("the sign-in state is not one this gateway issued")
        now = self._clock()
        if int(expires) < now:
            raise StateError("the sign-in took too long and its state expired: sign in again")
        if not cookie or not hmac.compare_digest(cookie.encode(), nonce.encode()):
            raise StateError("the sign-in was started in another browser: sign in again here")
        if nonce in self._used:
            raise StateError("this sign-in state was already used: sign in again")
        if len(self._used) >= self.capacity:
            self._forget_expired(now)
            if len(self._used) >= self.capacity:
                raise Busy()
        self._used[nonce] = float(expires)

    @property
    def remembered(self) -> int:
        return len(self._used)

    def _forget_expired(self, now: float) -> None:
        self._used = {n: e for n, e in self._used.items() if e >= now}

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
