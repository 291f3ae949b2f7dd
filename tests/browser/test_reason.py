"""The reason line in the popup (issue 12, item 1), in real Chromium on the demo portal page:
whose client it is, in the portal's language, with the owner and the company linked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser.demo import MINI, RED, WRAPPER, DemoPage, OpenDemo, demo_settings, ms
from tests.support import running_gateway
from tests.timing import timeout

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

ROMASHKA = "+7 (495) 123-45-67"  # ООО «Ромашка», IN_WORK, responsible user 6 (Анна Смирнова)
LINE = "#im-phone-call-view .callguard-reason"


async def reason_line(demo: DemoPage) -> dict[str, object]:
    await demo.page.wait_for_selector(LINE, timeout=ms(timeout(1)))
    found: dict[str, object] = await demo.page.eval_on_selector(
        LINE,
        """el => ({
            text: el.textContent,
            html: el.innerHTML,
            links: [...el.querySelectorAll('a')].map(a => [a.textContent, a.getAttribute('href')]),
        })""",
    )
    return found


async def test_a_russian_portal_shows_whose_client_it_is_in_russian(demo: DemoPage) -> None:
    await demo.open(user="7")
    await demo.connected()
    await demo.ring(ROMASHKA)
    await demo.wait_background(WRAPPER, RED, timeout(1))
    line = await reason_line(demo)
    assert line["text"] == "Чужой клиент: Анна Смирнова · ООО «Ромашка» · В работе"
    assert line["links"] == [
        ["Анна Смирнова", "/company/personal/user/6/"],
        ["ООО «Ромашка»", "/crm/company/details/10/"],
    ]
    await demo.page.click("#cg-fold")  # the folded mini panel says it as its tooltip
    assert await demo.page.get_attribute(MINI, "title") == line["text"]
    paint = (await demo.paints())[-1]
    assert paint["owner"] == {"id": "6", "name": "Анна Смирнова"}
    assert paint["entity"] == {
        "type": "company",
        "id": "10",
        "title": "ООО «Ромашка»",
        "status": "В работе",
    }


async def test_an_english_portal_shows_it_in_english(demo: DemoPage) -> None:
    await demo.open(user="7", lang="en")
    await demo.connected()
    await demo.ring(ROMASHKA)
    await demo.wait_background(WRAPPER, RED, timeout(1))
    line = await reason_line(demo)
    assert line["text"] == "Another manager's client: Анна Смирнова · ООО «Ромашка» · In work"
    assert "Чужой" not in str(line["text"])


HOSTILE = '<img src=x onerror="window.__owned=1">Ромашка & <b>Co</b>'


async def test_names_are_text_never_html_and_the_line_goes_with_the_call(
    open_demo: OpenDemo, tmp_path: Path
) -> None:
    data = {
        "users": [{"id": 6, "name": "<i>Анна</i>"}, {"id": 7, "name": "Пётр"}],
        "companies": [
            {
                "id": 10,
                "title": HOSTILE,
                "assigned_by": 6,
                "status": "IN_WORK",
                "phones": [ROMASHKA],
            }
        ],
    }
    file = tmp_path / "hostile.json"
    file.write_text(json.dumps(data), encoding="utf-8")
    async with running_gateway(demo_settings().but(directory=str(file))) as base:
        demo = await open_demo(base)
        await demo.open(user="7")
        await demo.connected()
        await demo.ring(ROMASHKA)
        line = await reason_line(demo)
        assert line["links"] == [
            ["<i>Анна</i>", "/company/personal/user/6/"],
            [HOSTILE, "/crm/company/details/10/"],
        ]
        assert (
            await demo.page.evaluate("document.querySelectorAll('.callguard-reason *').length") == 2
        )
        assert await demo.page.evaluate("window.__owned") is None
        await demo.page.click("#cg-hangup")
        await demo.page.wait_for_selector(LINE, state="detached", timeout=ms(timeout(1)))
