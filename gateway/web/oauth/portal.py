"""Talking to Bitrix24 for a sign-in: the code exchange and ``user.current``.

One aiohttp session for the app's life, every request under ``CALLGUARD_OAUTH_TIMEOUT``. What goes
wrong becomes :class:`Upstream` (the OAuth server or the portal did not give an answer we can use:
502) or :class:`Refused` (it answered, and the answer says no: 502 too, with its error code).
Their messages never hold the code, the secret or a token: aiohttp's own exceptions print the
request URL, which carries the code and the secret, so none of them is passed on as text.

The shapes (reference/bitrix24.md §8a, Bitrix24 docs ``settings/oauth/index`` and
``api-reference/users/user-current``): ``GET {server}/oauth/token/?grant_type=authorization_code
&client_id=…&client_secret=…&code=…`` answers ``{"access_token", "expires_in", "refresh_token",
"scope", "domain", "server_endpoint", "client_endpoint", "member_id", "user_id", "status"}`` or
``{"error": "invalid_grant", ...}``; ``{client_endpoint}user.current`` with ``auth=<access_token>``
answers ``{"result": {"ID": "7", "ACTIVE": true, "NAME", "LAST_NAME", ...}}``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp


class Upstream(Exception):
    """No usable answer from the OAuth server or the portal; ``str(err)`` is one safe line."""


class Refused(Exception):
    """The OAuth server or the portal said no; ``code`` is its error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Grant:
    """What the code exchange gave (the refresh token is not kept: the gateway needs none)."""

    access_token: str
    domain: str
    member_id: str
    client_endpoint: str
    user_id: str

    def __repr__(self) -> str:  # a Grant in a traceback must not print its token
        return f"Grant(domain={self.domain!r}, member_id={self.member_id!r}, user={self.user_id!r})"


class PortalAuth:
    def __init__(self, server: str, client_id: str, client_secret: str, timeout: float) -> None:
        self.server = server.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 5.0))
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, raise_for_status=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def exchange(self, code: str) -> Grant:
        params = {
            "grant_type": "authorization_code",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "code": code,
        }
        doc = await self._json("GET", f"{self.server}/oauth/token/", "the OAuth server", params)
        if "error" in doc:
            raise Refused(_code(doc), f"the OAuth server refused the sign-in code ({_code(doc)})")
        fields = ("access_token", "domain", "member_id", "client_endpoint")
        values = [doc.get(name) for name in fields]
        if not all(isinstance(v, str) and v for v in values):
            missing = [
                n for n, v in zip(fields, values, strict=True) if not isinstance(v, str) or not v
            ]
            raise Upstream(f"the OAuth server's answer lacks {', '.join(missing)}")
        token, domain, member_id, endpoint = (str(v) for v in values)
        return Grant(token, domain, member_id, endpoint, str(doc.get("user_id") or ""))

    async def current_user(self, grant: Grant) -> dict[str, Any]:
        url = grant.client_endpoint.rstrip("/") + "/user.current"
        # The token goes in the body, not the URL: URLs end up in proxies' logs.
        doc = await self._json("POST", url, "the portal", data={"auth": grant.access_token})
        if "error" in doc:
            raise Refused(_code(doc), f"the portal refused user.current ({_code(doc)})")
        result = doc.get("result")
        if not isinstance(result, dict):
            raise Upstream("the portal's user.current answer has no result")
        return result

    async def _json(
        self,
        method: str,
        url: str,
        who: str,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            async with self._open().request(method, url, params=params, data=data) as response:
                status = response.status
                try:
                    doc = await response.json(content_type=None)
                except ValueError:
                    doc = None
        except TimeoutError:
            raise Upstream(
                f"{who} did not answer within the timeout (CALLGUARD_OAUTH_TIMEOUT)"
            ) from None
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as err:
            raise Upstream(f"could not reach {who} ({type(err).__name__})") from None
        if not isinstance(doc, dict):
            raise Upstream(f"{who} answered HTTP {status} without a JSON object")
        if status >= 400 and "error" not in doc:
            raise Upstream(f"{who} answered HTTP {status}")
        return doc


def _code(doc: dict[str, Any]) -> str:
    """The error code, if it is a plain word: anything else might echo what we sent."""
    code = str(doc.get("error", ""))
    return code if code.replace("_", "").isalnum() and len(code) <= 64 else "error"
