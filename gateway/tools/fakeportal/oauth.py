"""The fake portal's OAuth 2.0 for applications: authorize, token exchange, ``user.current``.

As Bitrix24 does it (reference/bitrix24.md §8a; Bitrix24 REST docs ``settings/oauth/index`` and
``api-reference/users/user-current``, dev.1c-bitrix.ru ``rest_help/users/user_current.php``):

- ``GET /oauth/authorize/?client_id=…&state=…[&redirect_uri=…]``: the signed-in user (here: the
  ``fake_portal_user`` cookie a test sets; without it, 401 — the real portal shows its login form)
  is sent back 302 to the application's handler with ``code``, ``state``, ``domain``,
  ``member_id``, ``scope``, ``server_domain``. An unknown client_id: 400.
- ``GET|POST /oauth/token/?grant_type=authorization_code&client_id=…&client_secret=…&code=…``
  answers ``{"access_token", "expires", "expires_in": 3600, "scope", "domain",
  "server_endpoint", "client_endpoint": "{portal}/rest/", "member_id", "user_id", "status": "L",
  "refresh_token"}``. A code is single use and lives ``code_ttl`` seconds (30 s on Bitrix24):
  an unknown, used or expired code answers 400 ``{"error": "invalid_grant"}``, a wrong client
  401 ``{"error": "invalid_client"}`` (the OAuth 2.0 error codes Bitrix24 answers with).
- ``/rest/{method}`` with ``auth=<access_token>`` (query or body): ``user.current`` answers the
  token's user, ``{"result": {"ID", "ACTIVE", "NAME", "LAST_NAME", ...}}``; a missing or unknown
  token 401 ``{"error": "invalid_token"}``, an expired one 401 ``{"error": "expired_token"}``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from gateway.tools.fakeportal.store import parse_params

if TYPE_CHECKING:
    from gateway.tools.fakeportal.server import FakePortal

USER_COOKIE = "fake_portal_user"
ACCESS_TTL = 3600


@dataclass
class App:
    client_id: str
    client_secret: str
    handler: str  # the application's handler URL: where authorize sends the user back


@dataclass
class Issued:
    user_id: str
    client_id: str
    expires: float


class FakeOAuth:
    def __init__(self, portal: FakePortal) -> None:
        self.portal = portal
        self.member_id = secrets.token_hex(16)
        self.scope = "user,crm,telephony"
        self.code_ttl = 30.0
        self.apps: dict[str, App] = {}
        self.codes: dict[str, Issued] = {}
        self.tokens: dict[str, Issued] = {}
        # What the token endpoint saw: tests check the secret arrived and nothing else leaked.
        self.exchanges = 0

    def register(self, client_id: str, client_secret: str, handler: str) -> App:
        """A local application, as an administrator registers it on the portal."""
        app = App(client_id, client_secret, handler)
        self.apps[client_id] = app
        return app

    def expire_codes(self) -> None:
        for issued in self.codes.values():
            issued.expires = 0.0

    def expire_tokens(self) -> None:
        for issued in self.tokens.values():
            issued.expires = 0.0

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", "/oauth/authorize/", self.authorize),
            ("*", "/oauth/token/", self.token),
            ("*", "/rest/{method}", self.rest),
        ]

    # -- endpoints ---------------------------------------------------------------------------
    async def authorize(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        app = self.apps.get(query.get("client_id", ""))
        if app is None:
            return web.Response(status=400, text="unknown client_id")
        user = request.cookies.get(USER_COOKIE, "")
        if user not in self.portal.store.users:
            return web.Response(status=401, text="sign in to the portal first")
        handler = query.get("redirect_uri") or app.handler
        if urlsplit(handler)[:2] != urlsplit(app.handler)[:2]:
            return web.Response(status=400, text="redirect_uri is not on the application's host")
        code = secrets.token_hex(16)
        self.codes[code] = Issued(user, app.client_id, time.time() + self.code_ttl)
        params = {
            "code": code,
            "state": query.get("state", ""),
            "domain": self.domain,
            "member_id": self.member_id,
            "scope": self.scope,
            "server_domain": urlsplit(self.portal.url).netloc,
        }
        sep = "&" if "?" in handler else "?"
        raise web.HTTPFound(f"{handler}{sep}{urlencode(params)}")

    async def token(self, request: web.Request) -> web.Response:
        params = await _params(request)
        self.exchanges += 1
        app = self.apps.get(str(params.get("client_id", "")))
        if app is None or params.get("client_secret") != app.client_secret:
            return _error(401, "invalid_client", "Invalid client credentials")
        if params.get("grant_type") != "authorization_code":
            return _error(400, "unsupported_grant_type", "Only authorization_code is emulated")
        issued = self.codes.pop(str(params.get("code", "")), None)
        if issued is None or issued.client_id != app.client_id or issued.expires < time.time():
            return _error(400, "invalid_grant", "Invalid authorization code")
        access = secrets.token_hex(16)
        self.tokens[access] = Issued(issued.user_id, app.client_id, time.time() + ACCESS_TTL)
        return web.json_response(
            {
                "access_token": access,
                "expires": int(time.time() + ACCESS_TTL),
                "expires_in": ACCESS_TTL,
                "scope": self.scope,
                "domain": self.domain,
                "server_endpoint": f"{self.portal.url}rest/",
                "status": "L",
                "client_endpoint": f"{self.portal.url}rest/",
                "member_id": self.member_id,
                "user_id": int(issued.user_id),
                "refresh_token": secrets.token_hex(16),
            }
        )

    async def rest(self, request: web.Request) -> web.Response:
        method = request.match_info["method"].lower().removesuffix(".json")
        params = await _params(request)
        issued = self.tokens.get(str(params.get("auth", "")))
        if issued is None:
            return _error(401, "invalid_token", "The access token provided is invalid.")
        if issued.expires < time.time():
            return _error(401, "expired_token", "The access token provided has expired.")
        if method != "user.current":
            return _error(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        user = self.portal.store.users[issued.user_id]
        return web.json_response({"result": {k: v for k, v in user.items() if k != "_ADMIN"}})

    @property
    def domain(self) -> str:
        return urlsplit(self.portal.url).netloc


async def _params(request: web.Request) -> dict[str, Any]:
    params = parse_params(request.query_string)
    if request.can_read_body:
        params.update(parse_params((await request.read()).decode("utf-8", "replace")))
    return params


def _error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)
