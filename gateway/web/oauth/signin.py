"""``GET /auth/start`` and ``GET /auth/callback``: a portal user signs in through the Bitrix24
application and gets a Callguard token (design.md §3.7).

start: a state (states.py) and its cookie, then 302 to ``{portal}/oauth/authorize/``.
callback, in this order (the cheap refusals first, nothing sent anywhere before the state holds):
state (400) -> the ``domain``/``member_id`` the portal put in the URL (403) -> code exchange
(502 if refused or unreachable) -> the grant's domain, member_id and REST endpoint (403) ->
``user.current`` (502) -> pin the member_id on first success -> token. The answer is JSON
``{"token", "user_id", "expires_at"}`` for ``Accept: application/json``, else page.py's page;
refusals are ``{"error", "message"}`` or the page with the same code.

Logs name the user, the portal and the reason; never a code, a token or the client secret.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlencode, urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.live.tokens import issue_token
from gateway.run.config import ConfigError, Settings
from gateway.store.database import Database, DatabaseError
from gateway.store.portal_pin import PortalPin
from gateway.web.oauth.page import page
from gateway.web.oauth.portal import Grant, PortalAuth, Refused, Upstream
from gateway.web.oauth.states import COOKIE, Busy, StateError, States
from gateway.web.responses import failure, json_response

log = logging.getLogger("callguard.signin")

OUTCOMES = (
    "ok",
    "bad_state",
    "wrong_portal",
    "inactive_user",
    "portal_refused",
    "upstream_error",
    "busy",
)


class HideCallbackQuery(logging.Filter):
    """Access logs (uvicorn's, when a deployment turns them on or lets them propagate) print
    the request line: for the callback it holds the code and the state. Drop that query."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = args[2]
            if path.startswith("/auth/callback?"):
                record.args = (*args[:2], "/auth/callback?…", *args[3:])
        return True


ACCESS_FILTER = HideCallbackQuery()


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class SignIn:
    def __init__(self, settings: Settings, registry: CollectorRegistry, database: Database) -> None:
        if not (settings.oauth_client_secret and settings.portal_url and settings.public_url):
            raise ConfigError(
                "CALLGUARD_OAUTH_CLIENT_ID: sign-in also needs CALLGUARD_OAUTH_CLIENT_SECRET, "
                "CALLGUARD_PORTAL_URL and CALLGUARD_PUBLIC_URL"
            )
        portal = urlsplit(settings.portal_url)
        self.portal_origin = f"{portal.scheme}://{portal.netloc}"
        self.portal_domain = _host(portal.netloc)
        self.client_id = settings.oauth_client_id or ""
        self.redirect_uri = settings.public_url.rstrip("/") + "/auth/callback"
        self.secure_cookie = settings.public_url.startswith("https:")
        self.secret = settings.secret
        self.token_ttl = settings.token_ttl
        self.lang = settings.lang
        self.states = States(settings.secret, settings.oauth_state_ttl, settings.oauth_pending)
        self.auth = PortalAuth(
            settings.oauth_server,
            self.client_id,
            settings.oauth_client_secret,
            settings.oauth_timeout,
        )
        self.pins = PortalPin(database)
        logging.getLogger("uvicorn.access").addFilter(ACCESS_FILTER)  # a set: added once
        self.signins = Counter(
            "callguard_signins",
            "Sign-ins through Bitrix24 by outcome",
            ["outcome"],
            registry=registry,
        )
        for outcome in OUTCOMES:
            self.signins.labels(outcome)
        # How close the used-state memory is to CALLGUARD_OAUTH_PENDING (past it: 503 busy).
        Gauge(
            "callguard_signin_states",
            "Used sign-in states remembered until they expire",
            registry=registry,
        ).set_function(lambda: self.states.remembered)

    async def close(self) -> None:
        await self.auth.close()

    async def start(self, request: Request) -> Response:
        state, nonce = self.states.issue()
        query = urlencode(
            {"client_id": self.client_id, "state": state, "redirect_uri": self.redirect_uri}
        )
        response = RedirectResponse(f"{self.portal_origin}/oauth/authorize/?{query}", 302)
        response.headers["Cache-Control"] = "no-store"
        response.set_cookie(
            COOKIE,
            nonce,
            max_age=int(self.states.ttl),
            path="/auth/",
            secure=self.secure_cookie,
            httponly=True,
            samesite="lax",
        )
        return response

    async def callback(self, request: Request) -> Response:
        wants_json = _wants_json(request)
        try:
            user_id = await self._sign_in(request)
        except Refusal as err:
            self.signins.labels(err.code).inc()
            log.warning("sign-in refused (%s): %s", err.code, err)
            if wants_json:
                response = failure(err.status, err.code, str(err))
            else:
                response = page(self.lang, err.status, error=err.code, message=str(err))
        else:
            self.signins.labels("ok").inc()
            now = time.time()
            token = issue_token(self.secret, user_id, self.token_ttl, now)
            expires_at = int(now + self.token_ttl)
            log.info("sign-in: user %s of %s", user_id, self.portal_domain)
            if wants_json:
                body = {"token": token, "user_id": user_id, "expires_at": expires_at}
                response = json_response(body, 200, **{"Cache-Control": "no-store"})
            else:
                response = page(self.lang, 200, user_id=user_id, token=token, expires_at=expires_at)
        response.delete_cookie(COOKIE, path="/auth/", secure=self.secure_cookie, httponly=True)
        return response

    async def _sign_in(self, request: Request) -> str:
        query = request.query_params
        try:
            self.states.take(query.get("state"), request.cookies.get(COOKIE))
        except StateError as err:
            raise Refusal(400, "bad_state", str(err)) from None
        except Busy:
            raise Refusal(
                503,
                "busy",
                f"more than CALLGUARD_OAUTH_PENDING={self.states.capacity} sign-ins within "
                f"CALLGUARD_OAUTH_STATE_TTL={self.states.ttl:g} s: try again shortly",
            ) from None
        if query.get("error"):
            raise Refusal(400, "bad_state", "the portal did not let the user sign in")
        code = query.get("code")
        if not code:
            raise Refusal(400, "bad_state", "the portal sent no code: sign in again")
        pinned = await self._pinned()
        # The URL's domain and member_id are only claims (the grant below is the proof), but a
        # wrong one needs no round trip to be refused.
        self._check_portal(query.get("domain"), query.get("member_id"), pinned)
        try:
            grant = await self.auth.exchange(code)
            self._check_portal(grant.domain, grant.member_id, pinned)
            self._check_endpoint(grant)
            user = await self.auth.current_user(grant)
        except Refused as err:
            raise Refusal(502, "portal_refused", str(err)) from None
        except Upstream as err:
            raise Refusal(502, "upstream_error", str(err)) from None
        user_id = str(user.get("ID", "")).strip()
        if not user_id.isdigit():
            raise Refusal(502, "upstream_error", "the portal's user.current has no user ID")
        if user.get("ACTIVE") in (False, "N"):
            raise Refusal(403, "inactive_user", f"user {user_id} is deactivated in the portal")
        if pinned is None:
            try:
                pinned = await self.pins.pin(grant.member_id, grant.domain)
            except DatabaseError as err:
                raise Refusal(503, "database_error", str(err)) from None
            # Another process may have pinned another account meanwhile: its pin stands.
            self._check_portal(None, grant.member_id, pinned)
            log.warning(
                "pinned portal %s (member_id %s): sign-ins from any other account are refused",
                grant.domain,
                grant.member_id,
            )
        return user_id

    async def _pinned(self) -> str | None:
        try:
            return await self.pins.get()
        except DatabaseError as err:
            raise Refusal(503, "database_error", str(err)) from None

    def _check_portal(self, domain: str | None, member_id: str | None, pinned: str | None) -> None:
        if domain is not None and _host(domain) != self.portal_domain:
            raise Refusal(
                403,
                "wrong_portal",
                f"signed in to {domain.strip()[:100]!r}, but this gateway serves "
                f"{self.portal_domain!r} (CALLGUARD_PORTAL_URL)",
            )
        if member_id is not None and pinned is not None and member_id != pinned:
            raise Refusal(
                403,
                "wrong_portal",
                f"portal account {member_id[:64]!r} is not the pinned one {pinned!r} (delete "
                "the row of the database table portal_pin if the portal really moved)",
            )

    def _check_endpoint(self, grant: Grant) -> None:
        # The access token goes to client_endpoint: only ever to the configured portal.
        parts = urlsplit(grant.client_endpoint)
        if f"{parts.scheme}://{parts.netloc}".lower() != self.portal_origin.lower():
            raise Refusal(
                403,
                "wrong_portal",
                f"the grant's REST endpoint is not on {self.portal_origin} (CALLGUARD_PORTAL_URL)",
            )


def _host(netloc: str) -> str:
    """``Example.bitrix24.ru:443`` and ``example.bitrix24.ru`` are one portal."""
    host = netloc.strip().lower()
    return host.removesuffix(":443").removesuffix(":80")


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept
