"""What ``callguard serve``, ``demo`` and ``token`` do, behind the command-line parsing.

Each function raises :class:`gateway.run.config.ConfigError` (one line naming the variable) before
anything listens; the CLI prints it and exits 2.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from gateway.live.tokens import issue_token
from gateway.run import logs
from gateway.run.config import ConfigError, Settings
from gateway.store.url import MEMORY_URL

log = logging.getLogger("callguard.launch")

INSECURE_WARNING = (
    "WARNING: --insecure-dev: CALLGUARD_SECRET is not set, using a throw-away secret. "
    "Tokens die with this process; never run it like this in production."
)


def serve(host: str | None, port: int | None, insecure_dev: bool) -> None:
    settings = Settings.from_env(insecure_dev=insecure_dev)
    settings = settings.but(
        host=host or settings.host, port=settings.port if port is None else port
    )
    logs.configure(settings)
    if settings.insecure_dev:
        log.warning(INSECURE_WARNING)
    _run(settings)


def demo(host: str, port: int) -> None:
    """The gateway on the bundled demo data with the demo page. It hands a token to anyone who
    asks (``/demo/api/token``), so it signs with a fresh secret of its own, never with
    ``CALLGUARD_SECRET``: a demo's tokens open no production gateway that shares the variable.
    The demo's data lives in the process, so its approved statuses do too."""
    settings = Settings.from_env(insecure_dev=True).but(
        host=host,
        port=port,
        demo=True,
        directory=None,
        portal_url=None,
        secret=secrets.token_urlsafe(32),
        database_url=MEMORY_URL,
    )
    logs.configure(settings)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    _run(settings, f"Callguard demo: open http://{shown}:{port}/demo/")


def token(user: str, ttl: float) -> str:
    settings = Settings.from_env()
    if ttl > settings.token_max_ttl:
        # The gateway would refuse it (4401): say so now, not when a tab fails to connect.
        raise ValueError(
            f"--ttl {ttl:g} is longer than CALLGUARD_TOKEN_MAX_TTL ({settings.token_max_ttl:g} s)"
        )
    return issue_token(settings.secret, user, ttl)


def _run(settings: Settings, ready: str | None = None) -> None:
    from gateway.run.server import StartupError, run
    from gateway.web.app import create_app

    asyncio.run(check_database(settings))
    try:
        run(create_app(settings), settings, on_started=lambda: _say(ready))
    except (StartupError, ConfigError) as err:
        if settings.log_format == "json":  # every stderr line a JSON object, this one too
            log.error("%s", err)
            raise SystemExit(2) from None
        raise ConfigError(str(err)) from None


async def check_database(settings: Settings) -> None:
    """Open (create, migrate) the database once before anything listens, so an unreachable one
    is one line naming CALLGUARD_DATABASE_URL rather than a failed lifespan's traceback. The
    app's lifespan opens it again on its own event loop."""
    from gateway.store.database import Database, DatabaseUnavailable

    database = Database(settings.database_url, timeout=settings.database_timeout, pool_size=1)
    try:
        await database.open()
    except DatabaseUnavailable as err:
        raise ConfigError(str(err)) from None
    finally:
        await database.close()


def _say(line: str | None) -> None:
    if line:
        print(line, flush=True)
