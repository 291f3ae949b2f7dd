"""Shared test settings and the databases every test package may use.

Each test package keeps its own fixtures in its own conftest.py; these are shared because the
database is: the state directory, an SQLite file per test, the session's PostgreSQL database.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.postgres_server import create_database, drop_database, empty_database, require_postgres

settings.register_profile(
    "ci", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("default", deadline=None, max_examples=100)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(autouse=True, scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Never the real ~/.local/state/callguard: every gateway and subprocess the tests start
    keeps its default database under the session's temporary directory."""
    path = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(path))
        patch.delenv("CALLGUARD_STATE_DIR", raising=False)
        patch.delenv("CALLGUARD_DATABASE_URL", raising=False)
        yield path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A real SQLite file of this test's own (created by the gateway on first start)."""
    return f"sqlite:///{tmp_path / 'db' / 'callguard.sqlite3'}"


@pytest.fixture(scope="session")
def postgres_session() -> Iterator[str]:
    require_postgres()
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture
async def postgres_url(postgres_session: str) -> str:
    """The session's PostgreSQL database, empty at the start of each test."""
    await empty_database(postgres_session)
    return postgres_session


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs on a real SQLite file and on the real PostgreSQL server."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url
