"""The company status lifecycle on the demo page, in real Chromium against a real gateway (issue 5,
item 4): a peer's change is reverted with the notification the portal user would get; the
department head's change is approved and the company's calls change colour at once."""

from __future__ import annotations

import pytest

from tests.browser.demo import DEFAULT, RED, WRAPPER, OpenDemo, ms
from tests.timing import UNIT, timeout

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

ROMASHKA = "+7 (495) 123-45-67"  # ООО «Ромашка» (company 10), IN_WORK, responsible user 6
COMPANY = "10"
PEER = "7"  # Пётр Кузнецов, user 6's colleague in «Продажи: Москва»
HEAD = "4"  # Сергей Москвин, head of «Продажи: Москва»
COLOURED = "() => !['', 'red'].includes(document.getElementById('cg-decision').dataset.colour)"


async def test_a_peer_is_reverted_the_head_is_approved_and_the_colour_follows(
    open_demo: OpenDemo, gateway: str
) -> None:
    peer = await open_demo(gateway)
    await peer.open(user=PEER)
    await peer.connected()
    assert "Пётр Кузнецов" in await peer.page.inner_text("#cg-status-change")
    assert "Change as" in await peer.page.inner_text("#cg-status-change")

    # Before: another manager's company in work rings red.
    await peer.ring(ROMASHKA)
    await peer.wait_background(WRAPPER, RED, 1.0 * UNIT)

    # A peer's change is reverted; the page shows the notification naming who may change it.
    assert await peer.change_status(COMPANY, "DECLINED") == "reverted"
    verdict = await peer.page.inner_text("#cg-status-verdict")
    assert "Отменено (reverted)" in verdict
    assert "В работе (In work)" in verdict
    note = await peer.page.inner_text("#cg-status-note")
    assert "Статус компании «ООО «Ромашка»» не изменён" in note
    assert "Сергей Москвин" in note  # the head of the responsible manager's department
    assert "В работе (In work)" in await peer.page.inner_text("#cg-company-hint")
    assert await peer.background(WRAPPER) == RED

    # The head of the responsible manager's department changes it: approved.
    head = await open_demo(gateway)
    await head.open(user=HEAD)
    assert await head.change_status(COMPANY, "PENDING") == "approved"
    assert "Одобрено (approved)" in await head.page.inner_text("#cg-status-verdict")
    assert "В ожидании (Pending)" in await head.page.inner_text("#cg-company-hint")
    assert await head.page.inner_text("#cg-status-note") == ""

    # The peer's open call was decided again at once: not red any more.
    await peer.page.wait_for_function(COLOURED, timeout=ms(timeout(1)))
    assert await peer.background(WRAPPER) == DEFAULT

    # And the peer rings the number again: a fresh call, not red either.
    await peer.page.click("#cg-hangup")
    await peer.page.wait_for_selector("#cg-decision[data-colour='']", timeout=ms(timeout(1)))
    await peer.ring(ROMASHKA)
    await peer.page.wait_for_function(COLOURED, timeout=ms(timeout(1)))
    assert await peer.page.get_attribute("#cg-decision", "data-colour") == "none"
    assert await peer.background(WRAPPER) == DEFAULT

    # The head's page offers the same ring, from the panel.
    await head.connected()
    await head.page.click("#cg-status-ring")
    assert await head.page.input_value("#cg-phone") == ROMASHKA
    await head.page.wait_for_function(COLOURED, timeout=ms(timeout(1)))
    assert await head.background(WRAPPER) == DEFAULT
