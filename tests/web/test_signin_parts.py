"""The sign-in's parts: the state (signed, short-lived, single use, bound to a browser, bounded
memory), the page, and the settings."""

from __future__ import annotations

import pytest

from gateway.run.config import ConfigError, Settings
from gateway.web.oauth.page import page
from gateway.web.oauth.states import Busy, StateError, States

SECRET = "states-secret-0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_state_is_taken_once_and_only_with_its_cookie() -> None:
    states = States(SECRET, ttl=600, capacity=10, clock=Clock())
    state, nonce = states.issue()
    with pytest.raises(StateError, match="another browser"):
        states.take(state, "someone-else")
    states.take(state, nonce)
    with pytest.raises(StateError, match="already used"):
        states.take(state, nonce)


def test_a_state_expires() -> None:
    clock = Clock()
    states = States(SECRET, ttl=600, capacity=10, clock=clock)
    state, nonce = states.issue()
    clock.now += 601
    with pytest.raises(StateError, match="expired"):
        states.take(state, nonce)


def test_a_state_of_another_secret_or_edited_is_refused() -> None:
    state, nonce = States("another-secret-0123456789", 600, 10).issue()
    with pytest.raises(StateError, match="not one this gateway issued"):
        States(SECRET, 600, 10).take(state, nonce)
    mine = States(SECRET, 600, 10)
    state, nonce = mine.issue()
    head, expires, signature = state.split(".")
    with pytest.raises(StateError, match="not one this gateway issued"):
        mine.take(f"{head}.{int(expires) + 3600}.{signature}", nonce)


def test_used_states_are_remembered_until_they_expire_and_no_more_than_the_bound() -> None:
    clock = Clock()
    states = States(SECRET, ttl=600, capacity=2, clock=clock)
    for _ in range(2):
        states.take(*states.issue())
    # Full of states that could still be replayed: refuse rather than forget one.
    with pytest.raises(Busy):
        states.take(*states.issue())
    assert states.remembered == 2
    clock.now += 601
    states.take(*states.issue())  # the expired ones are forgotten to make room
    assert states.remembered == 1


BASE = {"CALLGUARD_SECRET": "s" * 32}
ALL = {
    **BASE,
    "CALLGUARD_OAUTH_CLIENT_ID": "local.abc.123",
    "CALLGUARD_OAUTH_CLIENT_SECRET": "secret",
    "CALLGUARD_PORTAL_URL": "https://example.bitrix24.ru/rest/1/code/",
    "CALLGUARD_PUBLIC_URL": "https://callguard.example.com",
}


def test_sign_in_settings() -> None:
    s = Settings.from_env(ALL)
    assert s.oauth_client_id == "local.abc.123"
    assert s.oauth_server == "https://oauth.bitrix.info"
    assert (s.oauth_state_ttl, s.oauth_timeout, s.oauth_pending) == (600.0, 10.0, 10_000)
    assert s.lang == "ru"
    assert s.token_ttl == 12 * 3600
    box = Settings.from_env(
        {**ALL, "CALLGUARD_OAUTH_SERVER": "https://portal.example/", "CALLGUARD_LANG": "EN"}
    )
    assert (box.oauth_server, box.lang) == ("https://portal.example", "en")
    assert Settings.from_env(BASE).oauth_client_id is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({**ALL, "CALLGUARD_OAUTH_CLIENT_SECRET": ""}, "CALLGUARD_OAUTH_CLIENT_SECRET: not set"),
        ({**ALL, "CALLGUARD_PUBLIC_URL": ""}, "CALLGUARD_PUBLIC_URL: not set"),
        ({**ALL, "CALLGUARD_PORTAL_URL": ""}, "CALLGUARD_PORTAL_URL: not set"),
        ({**BASE, "CALLGUARD_OAUTH_CLIENT_SECRET": "x"}, "CALLGUARD_OAUTH_CLIENT_ID: not set"),
        ({**ALL, "CALLGUARD_OAUTH_SERVER": "oauth.bitrix.info"}, "CALLGUARD_OAUTH_SERVER: must be"),
        ({**ALL, "CALLGUARD_OAUTH_STATE_TTL": "5"}, "CALLGUARD_OAUTH_STATE_TTL: must be between"),
        ({**ALL, "CALLGUARD_OAUTH_PENDING": "0"}, "CALLGUARD_OAUTH_PENDING: must be"),
        ({**BASE, "CALLGUARD_LANG": "de"}, "CALLGUARD_LANG: must be one of ru, en"),
        ({**BASE, "CALLGUARD_TOKEN_TTL": "90000"}, "CALLGUARD_TOKEN_TTL: 90000 s is longer"),
    ],
)
def test_bad_sign_in_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_the_page_speaks_the_configured_language() -> None:
    english = page("en", 403, error="wrong_portal", message="signed in to 'other.bitrix24.ru'")
    text = english.body.decode()
    assert '<html lang="en">' in text
    assert "The sign-in failed." in text
    assert "Вход" not in text
    russian = page("ru", 403, error="wrong_portal", message="signed in to 'other.bitrix24.ru'")
    assert "Вход не удался." in russian.body.decode()
    assert "другой портал" in russian.body.decode()
    assert "&#x27;other.bitrix24.ru&#x27;" in russian.body.decode()  # escaped
