"""CALLGUARD_DATABASE_URL and the state directory: the documented default file, the forms a URL
may take, and errors that name the variable without showing a password."""

from pathlib import Path

import pytest

from gateway.run.config import ConfigError, Settings
from gateway.store.url import MEMORY_URL, mask, sqlite_file

SECRET = {"CALLGUARD_SECRET": "s" * 32}


@pytest.mark.parametrize(
    ("env", "file"),
    [
        ({"HOME": "/home/cg"}, "/home/cg/.local/state/callguard/callguard.sqlite3"),
        (
            {"HOME": "/home/cg", "XDG_STATE_HOME": "/var/lib/xdg"},
            "/var/lib/xdg/callguard/callguard.sqlite3",
        ),
        # The XDG spec says a relative XDG_STATE_HOME is to be ignored.
        (
            {"HOME": "/home/cg", "XDG_STATE_HOME": "relative"},
            "/home/cg/.local/state/callguard/callguard.sqlite3",
        ),
        (
            {"HOME": "/home/cg", "XDG_STATE_HOME": "/x", "CALLGUARD_STATE_DIR": "/srv/callguard"},
            "/srv/callguard/callguard.sqlite3",
        ),
    ],
)
def test_the_default_database_is_a_file_in_the_state_directory(
    env: dict[str, str], file: str
) -> None:
    url = Settings.from_env({**SECRET, **env}).database_url
    assert url == "sqlite:///" + file
    assert sqlite_file(url) == Path(file)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////srv/callguard/callguard.sqlite3",
        "sqlite:///relative/callguard.sqlite3",
        "sqlite+aiosqlite:////srv/cg.db",
        MEMORY_URL,
        "postgresql://callguard:pw@db.internal:5432/callguard",
        "postgres://callguard@db.internal/callguard",
        "postgresql+asyncpg://callguard@db.internal/callguard",
        "postgresql:///callguard?host=/run/postgresql",
    ],
)
def test_database_urls_that_are_accepted(url: str) -> None:
    assert Settings.from_env({**SECRET, "CALLGUARD_DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://cg:pw@db/cg", "must be sqlite:///PATH (the embedded database) or postgresql://"),
        ("sqlite://", "an SQLite URL names a file"),
        ("sqlite:///", "an SQLite URL names a file"),
        ("postgresql:///callguard", "a PostgreSQL URL names a server"),
        ("/srv/callguard.sqlite3", "must be sqlite:///PATH"),
    ],
)
def test_bad_database_urls_name_the_variable(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**SECRET, "CALLGUARD_DATABASE_URL": url})
    assert str(caught.value).startswith("CALLGUARD_DATABASE_URL: ")
    assert message in str(caught.value)


def test_a_password_never_shows_in_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**SECRET, "CALLGUARD_DATABASE_URL": "mysql://cg:hunter22@db/cg"})
    assert "hunter22" not in str(caught.value)
    assert "mysql://cg:***@db/cg" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://cg:pw@db/callguard", "postgresql://cg:***@db/callguard"),
        (
            "postgresql://cg@db/callguard?password=pw&ssl=1",
            "postgresql://cg@db/callguard?password=***&ssl=1",
        ),
        ("postgresql:///cg?host=/run/pg&PASSWORD=pw", "postgresql:///cg?host=/run/pg&PASSWORD=***"),
        ("sqlite:////srv/callguard.sqlite3", "sqlite:////srv/callguard.sqlite3"),
        ("postgresql://cg:pw@[::1/cg", "<unparsable URL>"),
    ],
)
def test_mask(url: str, shown: str) -> None:
    assert mask(url) == shown


def test_timeout_and_pool_are_bounded_settings() -> None:
    s = Settings.from_env(
        {**SECRET, "CALLGUARD_DATABASE_TIMEOUT": "2.5", "CALLGUARD_DATABASE_POOL": "10"}
    )
    assert (s.database_timeout, s.database_pool) == (2.5, 10)
    with pytest.raises(ConfigError, match=r"^CALLGUARD_DATABASE_TIMEOUT: must be between"):
        Settings.from_env({**SECRET, "CALLGUARD_DATABASE_TIMEOUT": "0"})
    with pytest.raises(ConfigError, match=r"^CALLGUARD_DATABASE_POOL: must be a whole number"):
        Settings.from_env({**SECRET, "CALLGUARD_DATABASE_POOL": "0"})


def test_settings_built_in_code_keep_their_database_in_memory() -> None:
    assert Settings(secret="s" * 32).database_url == MEMORY_URL
