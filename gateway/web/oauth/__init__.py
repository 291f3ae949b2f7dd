"""Sign-in through a Bitrix24 application (OAuth 2.0), for cloud portals (issue 13).

``signin_routes(signin)``: the two routes when CALLGUARD_OAUTH_CLIENT_ID is set; otherwise one
route that says which variables to set. signin.py holds the flow, states.py the state, portal.py
the requests to Bitrix24, pin.py the pinned portal account, page.py the page a browser sees.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.run.config import Settings
from gateway.web.oauth.signin import SignIn
from gateway.web.responses import failure

OFF = (
    "sign-in through Bitrix24 is off: set CALLGUARD_OAUTH_CLIENT_ID, "
    "CALLGUARD_OAUTH_CLIENT_SECRET, CALLGUARD_PORTAL_URL and CALLGUARD_PUBLIC_URL "
    "(docs/install-cloud.md)"
)


def build_signin(settings: Settings, registry: CollectorRegistry) -> SignIn | None:
    """The sign-in, or None when it is off. Raises ConfigError when half-configured."""
    return SignIn(settings, registry) if settings.oauth_client_id else None


async def _off(request: Request) -> Response:
    return failure(404, "signin_off", OFF)


def signin_routes(signin: SignIn | None) -> list[Route]:
    if signin is None:
        return [Route("/auth/start", _off, methods=["GET"]), Route("/auth/callback", _off)]
    return [
        Route("/auth/start", signin.start, methods=["GET"]),
        Route("/auth/callback", signin.callback, methods=["GET"]),
    ]
