"""``CALLGUARD_DATABASE_URL``: which database, where the embedded one lives, and how to show it.

Standard library only: the settings validate it without importing SQLAlchemy.

- ``sqlite:///relative/file``, ``sqlite:////absolute/file``: the embedded database (one host);
- ``sqlite:///:memory:``: a database that dies with the process (tests, ``callguard demo``);
- ``postgresql://user:password@host:5432/name``: PostgreSQL, for several processes or hosts.

Unset: ``callguard.sqlite3`` in the state directory: ``CALLGUARD_STATE_DIR``, else
``$XDG_STATE_HOME/callguard``, else ``~/.local/state/callguard``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

VARIABLE = "CALLGUARD_DATABASE_URL"
FILE_NAME = "callguard.sqlite3"
MEMORY_URL = "sqlite:///:memory:"

SQLITE_SCHEMES = ("sqlite", "sqlite+aiosqlite")
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")


class DatabaseUrlError(ValueError):
    """Not a database URL this gateway can use; the message says which forms are."""


def state_dir(env: Mapping[str, str]) -> Path:
    """Where the gateway keeps its state when nothing else is said (the XDG convention)."""
    explicit = (env.get("CALLGUARD_STATE_DIR") or "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = (env.get("XDG_STATE_HOME") or "").strip()
    # The XDG spec ignores a relative XDG_STATE_HOME.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "callguard"
    home = (env.get("HOME") or "").strip()
    base = Path(home) if home else Path.home()
    return base / ".local" / "state" / "callguard"


def default_url(env: Mapping[str, str]) -> str:
    return "sqlite:///" + str(state_dir(env).absolute() / FILE_NAME)


def check(url: str) -> str:
    """``url`` if this gateway can use it; raises :class:`DatabaseUrlError` otherwise."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme in SQLITE_SCHEMES:
        if not url.startswith(scheme + ":///") or not _sqlite_path(url):
            raise DatabaseUrlError(
                f"an SQLite URL names a file: sqlite:///relative/path or sqlite:////absolute/path, "
                f"got {mask(url)!r}"
            )
        return url
    if scheme in POSTGRES_SCHEMES:
        parts = urlsplit(url)
        if not parts.hostname and "host=" not in parts.query:
            raise DatabaseUrlError(
                f"a PostgreSQL URL names a server: postgresql://user:password@host:5432/name, "
                f"got {mask(url)!r}"
            )
        return url
    raise DatabaseUrlError(
        "must be sqlite:///PATH (the embedded database) or postgresql://user:password@host/name, "
        f"got {mask(url)!r}"
    )


def is_sqlite(url: str) -> bool:
    return url.split(":", 1)[0].lower() in SQLITE_SCHEMES


def is_memory(url: str) -> bool:
    return is_sqlite(url) and _sqlite_path(url) == ":memory:"


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL (``None`` for an in-memory database or another server)."""
    if not is_sqlite(url) or is_memory(url):
        return None
    return Path(_sqlite_path(url))


def _sqlite_path(url: str) -> str:
    rest = url.split(":", 1)[1]
    rest = rest[3:] if rest.startswith("///") else rest.lstrip("/")
    return rest.split("?", 1)[0]


def mask(url: str) -> str:
    """The URL without its password: ``postgresql://cg:***@db/callguard``."""
    base, sep, query = url.partition("?")
    # libpq and asyncpg also take the password as a query parameter.
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", query)
    try:
        parts = urlsplit(base)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if password:
        user_info, host = parts.netloc.rsplit("@", 1)
        base = base.replace(parts.netloc, user_info.split(":", 1)[0] + ":***@" + host, 1)
    return base + sep + query
