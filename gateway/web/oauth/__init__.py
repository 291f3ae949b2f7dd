"""Sign-in through a Bitrix24 application (OAuth 2.0), for cloud portals (issue 13).

``signin_routes(signin)``: the two routes when CALLGUARD_OAUTH_CLIENT_ID is set; otherwise one
route that says which variables to set. signin.py holds the flow, states.py the state, portal.py
the requests to Bitrix24, page.py the page a browser sees; the pinned portal account is kept in
the database (gateway/store/portal_pin.py).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.run.runtime import Gateway
from gateway.web.oauth.signin import SignIn
from gateway.web.responses import failure

OFF = (
    "sign-in through Bitrix24 is off: set CALLGUARD_OAUTH_CLIENT_ID, "
    "CALLGUARD_OAUTH_CLIENT_SECRET, CALLGUARD_PORTAL_URL and CALLGUARD_PUBLIC_URL "
    "(docs/install-cloud.md)"
)


def build_signin(gateway: Gateway) -> SignIn | None:
    """The sign-in, or None when it is off. Raises ConfigError when half-configured."""
    if not gateway.settings.oauth_client_id:
        return None
    return SignIn(gateway.settings, gateway.metrics.registry, gateway.database)


async def _off(request: Request) -> Response:
    return failure(404, "signin_off", OFF)


def signin_routes(signin: SignIn | None) -> list[Route]:
    if signin is None:
        return [Route("/auth/start", _off, methods=["GET"]), Route("/auth/callback", _off)]
    return [
        Route("/auth/start", signin.start, methods=["GET"]),
        Route("/auth/callback", signin.callback, methods=["GET"]),
    ]
