"""Sign-in through a Bitrix24 application against the fake portal's OAuth, all on loopback:
the whole flow and every refusal (issue 13)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from gateway.live.tokens import verify_token
from gateway.tools.fakeportal import FakePortal
from gateway.tools.fakeportal.oauth import USER_COOKIE
from tests.signin import CLIENT_SECRET, pinned_in, signin_gateway
from tests.support import TEST_SECRET, gateway_settings, running_gateway
from tests.timing import timeout

JSON = {"Accept": "application/json"}


@pytest.fixture
async def portal() -> AsyncIterator[FakePortal]:
    async with FakePortal() as fake:
        yield fake


@pytest.fixture
async def gateway(portal: FakePortal, tmp_path: Path) -> AsyncIterator[str]:
    async with signin_gateway(portal, tmp_path / "callguard.sqlite3") as base_url:
        yield base_url


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """One user agent with its cookie jar, as the user's browser is."""
    async with httpx.AsyncClient(timeout=timeout()) as client:
        yield client


async def to_callback(client: httpx.AsyncClient, gateway: str, user: str = "7") -> str:
    """/auth/start, then the portal's authorize as ``user``: the callback URL the portal sends
    the browser to (not yet followed)."""
    start = await client.get(f"{gateway}/auth/start")
    assert start.status_code == 302
    client.cookies.set(USER_COOKIE, user)
    authorize = await client.get(start.headers["location"])
    assert authorize.status_code == 302, authorize.text
    return authorize.headers["location"]


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update({k: v for k, v in changes.items() if v is not None})
    for k in [k for k, v in changes.items() if v is None]:
        query.pop(k, None)
    return urlunsplit(parts._replace(query=urlencode(query)))


async def metric(client: httpx.AsyncClient, gateway: str, outcome: str) -> float:
    text = (await client.get(f"{gateway}/metrics")).text
    found = re.search(rf'^callguard_signins_total\{{outcome="{outcome}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_start_sends_the_user_to_the_portals_authorize_page(
    portal: FakePortal, gateway: str, browser: httpx.AsyncClient
) -> None:
    start = await browser.get(f"{gateway}/auth/start")
    assert start.status_code == 302
    location = urlsplit(start.headers["location"])
    assert f"{location.scheme}://{location.netloc}/" == portal.url
    assert location.path == "/oauth/authorize/"
    query = parse_qs(location.query)
    assert query["client_id"] == [portal.oauth.apps.popitem()[0]]
    assert query["redirect_uri"] == [f"{gateway}/auth/callback"]
    assert query["state"][0].count(".") == 2
    cookie = start.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/auth/" in cookie


async def test_the_whole_flow_gives_a_token_for_the_portal_user(
    portal: FakePortal, gateway: str, browser: httpx.AsyncClient, tmp_path: Path
) -> None:
    callback = await to_callback(browser, gateway, user="7")
    query = parse_qs(urlsplit(callback).query)
    assert {"code", "state", "domain", "member_id", "scope", "server_domain"} <= set(query)
    answer = await browser.get(callback, headers=JSON)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"token", "user_id", "expires_at"}
    assert body["user_id"] == "7"
    assert verify_token(TEST_SECRET, body["token"]) == "7"
    assert answer.headers["cache-control"] == "no-store"
    # The first sign-in pinned the portal account, durably.
    assert await pinned_in(tmp_path / "callguard.sqlite3") == portal.oauth.member_id
    assert await metric(browser, gateway, "ok") == 1
    assert "\ncallguard_signin_states 1.0\n" in (await browser.get(f"{gateway}/metrics")).text


async def test_a_browser_gets_a_page_that_hands_the_token_over(
    gateway: str, browser: httpx.AsyncClient
) -> None:
    callback = await to_callback(browser, gateway, user="6")
    answer = await browser.get(callback, headers={"Accept": "text/html,*/*"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    main = re.search(r'<main id="callguard-signin" ([^>]*)>', answer.text)
    assert main is not None
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', main.group(1)))
    assert attrs["data-state"] == "ok"
    assert attrs["data-user-id"] == "6"
    assert verify_token(TEST_SECRET, attrs["data-token"]) == "6"
    assert "<script" not in answer.text  # the gateway's CSP allows no inline script
    assert "Вход выполнен" in answer.text  # CALLGUARD_LANG defaults to ru


async def test_a_replayed_state_is_refused(gateway: str, browser: httpx.AsyncClient) -> None:
    callback = await to_callback(browser, gateway)
    assert (await browser.get(callback, headers=JSON)).status_code == 200
    # The same callback again, with the start's cookie back in place.
    state = parse_qs(urlsplit(callback).query)["state"][0]
    browser.cookies.set("callguard_signin", state.split(".")[0])
    again = await browser.get(callback, headers=JSON)
    assert again.status_code == 400
    assert again.json()["error"] == "bad_state"
    assert "already used" in again.json()["message"]
    assert await metric(browser, gateway, "bad_state") == 1


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"state": None}, "no state"),
        ({"state": "abc.9999999999.forged"}, "not one this gateway issued"),
        ({"code": None}, "no code"),
        ({"error": "access_denied"}, "did not let the user sign in"),
    ],
    ids=["missing", "forged", "no-code", "denied"],
)
async def test_a_bad_state_or_callback_is_400(
    gateway: str, browser: httpx.AsyncClient, change: dict[str, str | None], says: str
) -> None:
    callback = await to_callback(browser, gateway)
    answer = await browser.get(with_query(callback, **change), headers=JSON)
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_state"
    assert says in answer.json()["message"]


async def test_a_state_from_another_browser_is_400(
    gateway: str, browser: httpx.AsyncClient
) -> None:
    callback = await to_callback(browser, gateway)
    async with httpx.AsyncClient(timeout=timeout()) as victim:
        answer = await victim.get(callback, headers=JSON)
    assert answer.status_code == 400
    assert "another browser" in answer.json()["message"]


async def test_a_refused_code_is_502_with_one_line(
    portal: FakePortal, gateway: str, browser: httpx.AsyncClient
) -> None:
    callback = await to_callback(browser, gateway)
    answer = await browser.get(with_query(callback, code="0" * 32), headers=JSON)
    assert answer.status_code == 502
    assert answer.json() == {
        "error": "portal_refused",
        "message": "the OAuth server refused the sign-in code (invalid_grant)",
    }
    # An expired code (30 s on Bitrix24) is refused the same way.
    callback = await to_callback(browser, gateway)
    portal.oauth.expire_codes()
    answer = await browser.get(callback, headers={"Accept": "text/html"})
    assert answer.status_code == 502
    assert 'data-error="portal_refused"' in answer.text
    assert await metric(browser, gateway, "portal_refused") == 2


async def test_another_portal_account_is_403_once_one_is_pinned(
    portal: FakePortal, gateway: str, browser: httpx.AsyncClient
) -> None:
    first = await browser.get(await to_callback(browser, gateway), headers=JSON)
    assert first.status_code == 200
    pinned = portal.oauth.member_id
    # The portal's address now leads to another Bitrix24 account.
    portal.oauth.member_id = "f" * 32
    answer = await browser.get(await to_callback(browser, gateway), headers=JSON)
    assert answer.status_code == 403
    assert answer.json()["error"] == "wrong_portal"
    assert pinned in answer.json()["message"]
    # A callback URL that claims the pinned account is caught by the grant itself.
    callback = with_query(await to_callback(browser, gateway), member_id=pinned)
    answer = await browser.get(callback, headers=JSON)
    assert answer.status_code == 403
    assert "f" * 32 in answer.json()["message"]


async def test_the_pin_outlives_the_gateway(portal: FakePortal, tmp_path: Path) -> None:
    """Pinned in the database: a gateway started again on it refuses another account."""
    database = tmp_path / "callguard.sqlite3"
    pinned = portal.oauth.member_id
    async with (
        signin_gateway(portal, database) as gateway,
        httpx.AsyncClient(timeout=timeout()) as browser,
    ):
        answer = await browser.get(await to_callback(browser, gateway), headers=JSON)
        assert answer.status_code == 200
    portal.oauth.member_id = "e" * 32
    async with (
        signin_gateway(portal, database) as gateway,
        httpx.AsyncClient(timeout=timeout()) as browser,
    ):
        answer = await browser.get(await to_callback(browser, gateway), headers=JSON)
    assert answer.status_code == 403
    assert pinned in answer.json()["message"]


async def test_a_sign_in_to_another_portal_is_403(tmp_path: Path) -> None:
    """One OAuth server for many portals (oauth.bitrix.info): a user of portal B signs in and
    is sent to our callback; the gateway serves portal A."""
    async with (
        FakePortal() as a,
        FakePortal() as b,
        signin_gateway(a, tmp_path / "db.sqlite3", oauth_server=b.url.rstrip("/")) as gateway,
        httpx.AsyncClient(timeout=timeout()) as browser,
    ):
        b.oauth.apps = dict(a.oauth.apps)
        start = await browser.get(f"{gateway}/auth/start")
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        browser.cookies.set(USER_COOKIE, "7")
        authorize_b = f"{b.url}oauth/authorize/?" + urlencode(
            {"client_id": next(iter(b.oauth.apps)), "state": state}
        )
        callback = (await browser.get(authorize_b)).headers["location"]
        answer = await browser.get(callback, headers=JSON)
        assert answer.status_code == 403
        assert b.oauth.exchanges == 0  # refused on the URL's domain, nothing exchanged
        # The same, the URL claiming portal A: the grant says B.
        start = await browser.get(f"{gateway}/auth/start")
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        callback = (await browser.get(with_query(authorize_b, state=state))).headers["location"]
        answer = await browser.get(with_query(callback, domain=a.oauth.domain), headers=JSON)
        assert answer.status_code == 403
        assert answer.json()["error"] == "wrong_portal"
        assert b.oauth.domain in answer.json()["message"]
    assert await pinned_in(tmp_path / "db.sqlite3") is None


async def test_an_oauth_server_out_of_reach_is_502(tmp_path: Path) -> None:
    async with FakePortal() as portal, FakePortal() as gone:
        closed = gone.url.rstrip("/")
        await gone.close()
        async with (
            signin_gateway(portal, None, oauth_server=closed) as gateway,
            httpx.AsyncClient(timeout=timeout()) as browser,
        ):
            answer = await browser.get(await to_callback(browser, gateway), headers=JSON)
    assert answer.status_code == 502
    assert answer.json()["error"] == "upstream_error"
    assert answer.json()["message"] == "could not reach the OAuth server (ClientConnectorError)"


async def test_an_oauth_server_that_answers_no_json_is_502(
    portal: FakePortal, tmp_path: Path
) -> None:
    async with (
        signin_gateway(portal, None, oauth_server=f"{portal.url}elsewhere") as gateway,
        httpx.AsyncClient(timeout=timeout()) as browser,
    ):
        answer = await browser.get(await to_callback(browser, gateway), headers=JSON)
    assert answer.status_code == 502
    assert answer.json() == {
        "error": "upstream_error",
        "message": "the OAuth server answered HTTP 404 without a JSON object",
    }


async def test_an_oauth_server_that_never_answers_is_502_after_the_timeout(
    portal: FakePortal, tmp_path: Path
) -> None:
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # reads nothing, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with (
            signin_gateway(
                portal, None, oauth_server=f"http://127.0.0.1:{port}", oauth_timeout=0.5
            ) as gateway,
            httpx.AsyncClient(timeout=timeout()) as browser,
        ):
            answer = await browser.get(await to_callback(browser, gateway), headers=JSON)
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert answer.status_code == 502
    assert answer.json()["message"] == (
        "the OAuth server did not answer within the timeout (CALLGUARD_OAUTH_TIMEOUT)"
    )


async def test_codes_tokens_and_the_secret_never_reach_the_logs(
    portal: FakePortal, gateway: str, browser: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets_seen: list[str] = [CLIENT_SECRET]
    for change in ({}, {"code": "deadbeef" * 4}, {"member_id": "0" * 32}):
        callback = await to_callback(browser, gateway)
        secrets_seen.append(parse_qs(urlsplit(callback).query)["code"][0])
        answer = await browser.get(with_query(callback, **change), headers=JSON)
        if answer.status_code == 200:
            secrets_seen.append(answer.json()["token"])
    secrets_seen.extend(portal.oauth.tokens)  # the access tokens the gateway was given
    assert len(secrets_seen) == 6
    # Everything the gateway, uvicorn and aiohttp logged (not this test's own httpx client).
    logged = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    assert "GET /auth/callback?…" in logged  # uvicorn's access line, with its query dropped
    assert "sign-in: user 7" in logged
    assert "sign-in refused" in logged
    assert [s for s in secrets_seen if s in logged] == []


async def test_without_the_settings_the_routes_say_what_to_set() -> None:
    async with (
        running_gateway(gateway_settings()) as gateway,
        httpx.AsyncClient(timeout=timeout()) as client,
    ):
        answer = await client.get(f"{gateway}/auth/start")
    assert answer.status_code == 404
    assert answer.json()["error"] == "signin_off"
    for name in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "PORTAL_URL", "PUBLIC_URL"):
        assert f"CALLGUARD_{name}" in answer.json()["message"]
