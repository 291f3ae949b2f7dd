"""Token renewal (design.md §3.7): the timer heap on its own, then the real gateway on loopback."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
import orjson
from websockets.asyncio.client import connect

from gateway.live.renewals import BATCH, EARLIEST, LATEST, Renewals
from gateway.live.tabs import Tabs
from gateway.live.tokens import Identity, check_token
from tests.live.test_loopback import closed_code, recv, ws_url
from tests.support import TEST_SECRET, gateway_settings, running_gateway
from tests.timing import timeout


class Recorder:
    """A tab's socket that keeps what it is sent."""

    def __init__(self) -> None:
        self.frames: list[dict[str, object]] = []
        self.sent = asyncio.Event()

    async def send_text(self, data: str) -> None:
        self.frames.append(orjson.loads(data))
        self.sent.set()

    async def renewed(self, count: int = 1) -> list[dict[str, object]]:
        """Wait until this socket has been sent ``count`` renewals; all it has had."""
        async with asyncio.timeout(timeout()):
            while len(renewals_in(self.frames)) < count:
                self.sent.clear()
                await self.sent.wait()
        return renewals_in(self.frames)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        pass


def token(iat: float | None, exp: float, sub: str = "7") -> str:
    claims: dict[str, object] = {"sub": sub, "exp": exp}
    if iat is not None:
        claims["iat"] = iat
    return jwt.encode(claims, TEST_SECRET, algorithm="HS256")


def identity(iat: float | None, exp: float, sub: str = "7") -> Identity:
    return check_token(TEST_SECRET, token(iat, exp, sub))


def renewals_in(frames: list[dict[str, object]]) -> list[dict[str, object]]:
    return [f for f in frames if f["type"] == "token"]


async def test_a_tab_past_half_its_lifetime_is_renewed_at_once_with_the_same_lifetime() -> None:
    now = time.time()
    tabs, renewals = Tabs(), Renewals(TEST_SECRET)
    socket = Recorder()
    tab = tabs.open("7", socket)
    renewals.add(tab, identity(now - 100, now + 20))  # 120 s, 100 of them gone
    [frame] = await socket.renewed()
    assert isinstance(frame["token"], str)
    renewed = check_token(TEST_SECRET, frame["token"], leeway=0)
    assert (renewed.user_id, renewed.lifetime) == ("7", 120)
    assert frame["expires_at"] == renewed.expires_at
    # The next one is due at 40-50% of the new token's lifetime.
    due = renewals.next_due
    assert due is not None
    assert renewed.issued_at + EARLIEST * 120 <= due <= renewed.issued_at + LATEST * 120
    renewals.close()


def test_renewals_are_due_before_60_percent_of_the_lifetime() -> None:
    now = time.time()
    tabs, renewals = Tabs(), Renewals(TEST_SECRET)
    for lifetime in (1, 60, 12 * 3600, 24 * 3600):
        tab = tabs.open("7", Recorder())
        renewals._push(tab, now, lifetime)  # the heap alone: no loop needed to read it
        assert renewals.next_due is not None
        assert renewals.next_due <= now + 0.6 * lifetime
        renewals.forget(tab)
    # A token without iat counts from when it was checked.
    tab = tabs.open("7", Recorder())
    checked = identity(None, now + 1000)
    renewals._push(tab, checked.issued_at, checked.lifetime)
    assert renewals.next_due is not None
    assert renewals.next_due <= checked.issued_at + 0.6 * checked.lifetime


async def test_renewals_go_on_until_the_tab_leaves_and_a_closed_tab_gets_none() -> None:
    now = time.time()
    tabs, renewals = Tabs(), Renewals(TEST_SECRET)
    socket = Recorder()
    tab = tabs.open("7", socket)
    renewals.add(tab, identity(int(now), int(now) + 2))
    tokens = [check_token(TEST_SECRET, str(f["token"])) for f in await socket.renewed(2)]
    assert all((t.user_id, t.lifetime) == ("7", 2) for t in tokens)
    renewals.forget(tab)
    assert len(renewals) == 0

    # Closed by the gateway before its renewal was due: dropped when the timer comes to it.
    # The witness is due later (at 40-50% of 200 s, 100 gone) than the closed tab (of 120 s).
    gone, witness = Recorder(), Recorder()
    closing = tabs.open("8", gone)
    renewals.add(closing, identity(now - 100, now + 20, sub="8"))
    renewals.add(tabs.open("9", witness), identity(now - 100, now + 100, sub="9"))
    closing.close(1013, "too slow")
    await witness.renewed()
    assert renewals_in(gone.frames) == []
    assert len(renewals) == 1  # the witness alone
    renewals.close()


async def test_a_token_of_a_few_seconds_is_renewed_once_per_half_life_not_in_a_loop() -> None:
    # The clock stands late in a second: the renewed token's iat (whole seconds) is 0.99 s old.
    moment = float(int(time.time())) + 0.99
    tabs, renewals = Tabs(), Renewals(TEST_SECRET, clock=lambda: moment)
    socket = Recorder()
    renewals.add(tabs.open("7", socket), identity(moment - 1.99, moment + 0.01))  # 2 s, due
    [frame] = await socket.renewed()
    assert check_token(TEST_SECRET, str(frame["token"]), now=moment).lifetime == 2
    assert renewals.next_due is not None
    assert renewals.next_due > moment
    renewals.close()


async def test_a_storm_of_renewals_is_sent_in_batches_and_reaches_every_tab() -> None:
    now = time.time()
    tabs, renewals = Tabs(), Renewals(TEST_SECRET)
    sockets = [Recorder() for _ in range(2 * BATCH + 10)]
    for number, socket in enumerate(sockets, start=1):
        renewals.add(tabs.open(str(number), socket), identity(now - 100, now + 20, str(number)))
    for number, socket in enumerate(sockets, start=1):
        [frame] = await socket.renewed()
        assert check_token(TEST_SECRET, str(frame["token"])).user_id == str(number)
    renewals.close()


def test_tabs_that_left_do_not_stay_in_the_heap() -> None:
    now = time.time()
    tabs, renewals = Tabs(), Renewals(TEST_SECRET)
    keep = tabs.open("1", Recorder())
    renewals._push(keep, now, 3600)
    for n in range(1000):  # one user each: one user's tabs are bounded (and closed in a loop)
        tab = tabs.open(str(2 + n), Recorder())
        renewals._push(tab, now, 3600)
        renewals.forget(tab)
    assert len(renewals) == 1
    assert renewals.entries <= 2 * len(renewals) + 65


# --- the real gateway on loopback --------------------------------------------------------------


async def metric_lines(base: str) -> list[str]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base}/metrics")
    response.raise_for_status()
    return response.text.splitlines()


async def wait_metric(base: str, line: str) -> None:
    async with asyncio.timeout(timeout()):
        while True:
            if line in await metric_lines(base):
                return
            await asyncio.sleep(0.02)


async def test_a_tab_receives_a_renewed_token_that_the_gateway_accepts() -> None:
    now = int(time.time())
    original = token(now - 100, now + 20)  # 120 s lifetime, 100 s gone: renewal due at once
    async with running_gateway(gateway_settings(token_leeway=0.0)) as base:
        async with connect(ws_url(base, token=original)) as ws:
            assert (await recv(ws))["type"] == "hello"
            frame = await recv(ws)
            assert frame["type"] == "token"
            assert isinstance(frame["token"], str)
            claims = jwt.decode(frame["token"], TEST_SECRET, algorithms=["HS256"])
            assert claims["sub"] == "7"
            assert claims["exp"] - claims["iat"] == 120
            assert frame["expires_at"] == claims["exp"]
            async with connect(ws_url(base, token=frame["token"])) as again:
                hello = await recv(again)
                assert (hello["type"], hello["user_id"]) == ("hello", "7")
        await wait_metric(base, "callguard_token_renewals_total 1.0")


async def test_a_short_lived_token_is_renewed_before_it_runs_out() -> None:
    now = int(time.time())
    async with (
        running_gateway(gateway_settings(token_leeway=0.0)) as base,
        connect(ws_url(base, token=token(now, now + 3))) as ws,
    ):
        assert (await recv(ws))["type"] == "hello"
        frame = await recv(ws)
        assert frame["type"] == "token"
        renewed = check_token(TEST_SECRET, str(frame["token"]), leeway=0)
        assert (renewed.user_id, renewed.lifetime) == ("7", 3)


async def test_every_close_is_counted_by_code() -> None:
    async with running_gateway(gateway_settings()) as base:
        async with connect(ws_url(base, token="not-a-token")) as refused:
            assert await closed_code(refused) == 4401
        await wait_metric(base, 'callguard_tab_closes_total{code="4401"} 1.0')
        async with connect(ws_url(base, user="7")) as tab:
            assert (await recv(tab))["type"] == "hello"
            await tab.close(4000, "the page went away")
        await wait_metric(base, 'callguard_tab_disconnects_total{code="4000"} 1.0')


async def test_the_max_ttl_setting_refuses_longer_tokens() -> None:
    now = int(time.time())
    async with running_gateway(gateway_settings(token_max_ttl=3600.0)) as base:
        async with connect(ws_url(base, token=token(now, now + 3601))) as ws:
            assert await closed_code(ws) == 4401
            assert ws.close_reason is not None
            assert "CALLGUARD_TOKEN_MAX_TTL" in ws.close_reason
        async with connect(ws_url(base, token=token(now, now + 3600))) as ws:
            assert (await recv(ws))["type"] == "hello"
