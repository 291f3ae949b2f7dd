"""Driving the demo portal page (static/demo/) in a real browser, through its own controls.

What the snippet did is read from the DOM (computed colours of the popup) and from the snippet's
public window events ('callguard:*'), which an init script records in ``window.__cg``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from playwright.async_api import Page

from gateway.run.config import Settings
from tests.timing import timeout

WRAPPER = "#im-phone-call-view .im-phone-call-wrapper"
MINI = ".im-phone-call-panel-mini"
RED = "rgb(211, 47, 47)"  # #d32f2f, rules/default.toml
YELLOW = "rgb(249, 168, 37)"  # #f9a825
BLUE = "rgb(21, 101, 192)"  # #1565c0
DEFAULT = "rgb(41, 48, 58)"  # #29303a, the portal's own popup background

RECORDER = """
window.__cg = {paints: [], hellos: 0, closes: [], tokens: []};
addEventListener('callguard:paint', function (e) { __cg.paints.push(e.detail); });
addEventListener('callguard:token', function (e) { __cg.tokens.push(e.detail); });
addEventListener('callguard:hello', function () { __cg.hellos += 1; });
addEventListener('callguard:close', function (e) { __cg.closes.push(e.detail.code); });
window.__cg.unstyled = 0;  // how many times the snippet's style rule left the page
new MutationObserver(function (records) {
  records.forEach(function (r) {
    [].forEach.call(r.removedNodes, function (n) { if (n.id === 'callguard-style') __cg.unstyled++; });
  });
}).observe(document, {childList: true, subtree: true});
"""

HAS_BACKGROUND = """([selector, colour]) => {
  const el = document.querySelector(selector);
  return !!el && getComputedStyle(el).backgroundColor === colour;
}"""


SECRET = "browser-tests-secret-0123456789abcdef"


def demo_settings() -> Settings:
    """A gateway in demo mode (the demo page and its API) on loopback."""
    return Settings(secret=SECRET, host="127.0.0.1", port=0, demo=True)


def ms(seconds: float) -> float:
    return seconds * 1000.0


@dataclass
class DemoPage:
    page: Page
    base: str
    errors: list[str] = field(default_factory=list)

    async def open(self, user: str = "7", **query: str) -> None:
        await self.page.add_init_script(RECORDER)
        await self.page.goto(f"{self.base}/demo/?{urlencode({'user': user, **query})}")

    async def connected(self, hellos: int = 1) -> None:
        """Wait until the snippet has had ``hellos`` hello messages from the gateway."""
        await self.page.wait_for_function(
            "n => window.__cg.hellos >= n", arg=hellos, timeout=ms(timeout(2))
        )

    async def ring(self, phone: str) -> None:
        """The telephony server invites this manager: pull event `invite`."""
        await self.page.fill("#cg-phone", phone)
        await self.page.click("#cg-incoming")

    async def dial(self, phone: str) -> None:
        """The manager dials out: the popup opens, then pull event `outgoing`."""
        await self.page.fill("#cg-phone", phone)
        await self.page.click("#cg-outgoing")

    async def change_status(self, company: str, status: str | None) -> str:
        """In the status panel, change ``company``'s status as the page's manager; wait for the
        outcome and return its action ("approved", "reverted", ...)."""
        outcome = "#cg-status-outcome"
        done = int(await self.page.get_attribute(outcome, "data-done") or "0")
        await self.page.wait_for_selector(
            f"#cg-company option[value='{company}']", state="attached", timeout=ms(timeout(1))
        )
        await self.page.select_option("#cg-company", company)
        await self.page.select_option("#cg-status-code", status or "")
        await self.page.click("#cg-status-change")
        await self.page.wait_for_function(
            "([sel, n]) => +document.querySelector(sel).dataset.done > n",
            arg=[outcome, done],
            timeout=ms(timeout(1)),
        )
        action = await self.page.get_attribute(outcome, "data-action")
        return action or ""

    async def wait_background(self, selector: str, colour: str, seconds: float) -> None:
        await self.page.wait_for_function(
            HAS_BACKGROUND, arg=[selector, colour], timeout=ms(seconds)
        )

    async def background(self, selector: str) -> str | None:
        found: str | None = await self.page.evaluate(
            "s => { const e = document.querySelector(s); return e && getComputedStyle(e).backgroundColor; }",
            selector,
        )
        return found

    async def paints(self) -> list[dict[str, Any]]:
        recorded: list[dict[str, Any]] = await self.page.evaluate("window.__cg.paints")
        return recorded

    async def closes(self) -> list[int]:
        codes: list[int] = await self.page.evaluate("window.__cg.closes")
        return codes

    async def tokens(self, count: int = 1) -> list[dict[str, Any]]:
        """Wait until the snippet has had ``count`` renewed tokens; all of them."""
        await self.page.wait_for_function(
            "n => window.__cg.tokens.length >= n", arg=count, timeout=ms(timeout(2))
        )
        renewed: list[dict[str, Any]] = await self.page.evaluate("window.__cg.tokens")
        return renewed

    async def unstyled(self) -> int:
        """How many times the snippet's style rule was removed since the page opened."""
        count: int = await self.page.evaluate("window.__cg.unstyled")
        return count

    async def styled(self) -> bool:
        """Whether the snippet's style rule is in the page."""
        present: bool = await self.page.evaluate("!!document.getElementById('callguard-style')")
        return present


OpenDemo = Callable[[str], Awaitable[DemoPage]]
