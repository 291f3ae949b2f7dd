"""Security headers on every HTTP answer (issue 14): ``nosniff`` everywhere; HTML pages (the demo)
also get a Content-Security-Policy that loads nothing from third parties and lets only the gateway
itself and the allowed origins (the portal) frame them."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The snippet adds one <style> element to the page (its colour rule), hence 'unsafe-inline' for
# styles only. Websockets: the gateway's own ('self'), or a loopback relay the demo's ?ws= names.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self' ws://127.0.0.1:* ws://localhost:*; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
)


def page_policy(frame_ancestors: Iterable[str]) -> str:
    return PAGE_POLICY.format(ancestors=" ".join(["'self'", *sorted(frame_ancestors)]))


class SecurityHeaders:
    def __init__(self, app: ASGIApp, frame_ancestors: Iterable[str] = ()) -> None:
        self.app = app
        self.policy = page_policy(frame_ancestors)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if headers.get("content-type", "").startswith("text/html"):
                    headers["Content-Security-Policy"] = self.policy
                    headers["Referrer-Policy"] = "no-referrer"
            await send(message)

        await self.app(scope, receive, send_with_headers)
