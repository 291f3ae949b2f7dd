"""Settings: one frozen dataclass built from the environment, validated at start (design.md §3.2).

Every variable has the prefix ``CALLGUARD_`` (``PORT`` is honoured for the Procfile). Unset means
the embedded default. An invalid value raises :class:`ConfigError` naming the variable.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.store import url as database_urls
from gateway.userid import InvalidUserId, user_id
from rules.phones import DEFAULT_REGION, check_region
from rules.policy import LANGS

PREFIX = "CALLGUARD_"
DEFAULT_STATUS_FIELD = "UF_CRM_CALLGUARD_STATUS"
DEFAULT_REDIS_PREFIX = "callguard:"
DEFAULT_OAUTH_SERVER = "https://oauth.bitrix.info"
OAUTH_VARIABLES = ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "PORTAL_URL", "PUBLIC_URL")
DEFAULT_TZ = "Europe/Moscow"


class ConfigError(ValueError):
    """An invalid setting; ``str(err)`` is one line that names the variable and what to do."""


@dataclass(frozen=True, slots=True)
class Settings:
    secret: str
    host: str = "0.0.0.0"
    port: int = 8000
    portal_url: str | None = None
    directory: Path | None = None
    rules: Path | None = None
    # from_env() fills in the state directory's file; a Settings built in code (tests) gets a
    # database that lives as long as the process.
    database_url: str = database_urls.MEMORY_URL
    database_timeout: float = 5.0
    database_pool: int = 5
    redis_url: str | None = None
    redis_prefix: str = DEFAULT_REDIS_PREFIX
    cache_backend: str = "memory"
    webhook_token: str | None = None
    api_key: str | None = None
    region: str = DEFAULT_REGION
    lang: str = "ru"  # the portal's language: texts for tabs that do not say theirs
    status_field: str = DEFAULT_STATUS_FIELD
    admins: tuple[str, ...] = ()
    cache_ttl: float = 300.0
    negative_ttl: float = 60.0
    cache_size: int = 10_000
    lookup_deadline: float = 1.5
    call_timeout: float = 900.0
    rate_burst: int = 50
    rate_per_second: float = 2.0
    rate_reserve: int = 10
    user_rate_share: float = 0.5
    tab_queue_bytes: int = 256 * 1024
    tab_call_rate: float = 10.0
    tab_ping_rate: float = 1.0  # websocket pings a peer may send a second (browsers send none)
    # Connection limits (gateway/run/connections.py); None: the open-files limit less a reserve.
    max_connections: int | None = None
    max_tabs_per_user: int = 30
    header_timeout: float = 10.0
    keep_alive: int = 5
    max_url: int = 8000
    max_headers: int = 16 * 1024
    user_inflight: int = 64  # calls being decided at once: per user, and in all
    max_inflight: int = 1000
    shutdown_drain: float = 5.0
    heartbeat: float = 20.0
    max_frame: int = 4096
    token_leeway: float = 60.0
    token_max_ttl: float = 86_400.0
    token_ttl: float = 12 * 3600.0  # the lifetime of tokens the gateway signs at sign-in
    public_url: str | None = None
    ledger_days: int = 365  # 0: no ledger
    ledger_queue: int = 10_000
    report_rows: int = 50_000
    tz: str = DEFAULT_TZ
    digest_at: str | None = None  # "HH:MM" in tz; None: no digest
    log_level: str = "info"
    log_format: str = "text"
    # None: the default (the portal's origin and PUBLIC_URL's); see gateway/web/origins.py.
    allowed_origins: tuple[str, ...] | None = None
    # Sign-in through a Bitrix24 application (gateway/web/oauth): on when the client id is set.
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = None
    oauth_server: str = DEFAULT_OAUTH_SERVER
    oauth_state_ttl: float = 600.0
    oauth_timeout: float = 10.0
    oauth_pending: int = 10_000
    insecure_dev: bool = field(default=False)
    demo: bool = field(default=False)
    # Settings that still start but say what to use instead; the launcher logs them.
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, insecure_dev: bool = False
    ) -> Settings:
        return _Reader(os.environ if env is None else env).settings(insecure_dev)

    def but(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests, ``callguard demo``)."""
        return replace(self, **changes)  # type: ignore[arg-type]


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def raw(self, name: str) -> str | None:
        value = self.env.get(PREFIX + name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def fail(self, name: str, message: str) -> ConfigError:
        return ConfigError(f"{PREFIX}{name}: {message}")

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise self.fail(name, f"must be a number, got {value!r}") from None
        if not low <= number <= high:
            raise self.fail(name, f"must be between {low:g} and {high:g}, got {value!r}")
        return number

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        if not value.isdigit() or not low <= int(value) <= high:
            raise self.fail(name, f"must be a whole number from {low} to {high}, got {value!r}")
        return int(value)

    def url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.netloc:
            raise self.fail(name, f"must be a {'/'.join(schemes)} URL, got {mask_url(value)!r}")
        return value

    def path(self, name: str) -> Path | None:
        value = self.raw(name)
        if value is None:
            return None
        file = Path(value)
        if not file.is_file():
            raise self.fail(name, f"no such file: {value}")
        return file

    def origins(self, name: str) -> tuple[str, ...] | None:
        value = self.raw(name)
        if value is None:
            return None
        out: list[str] = []
        for item in (i.strip() for i in value.split(",")):
            parts = urlsplit(item)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.username is not None
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
            ):
                raise self.fail(
                    name,
                    "must be comma-separated origins like https://portal.example "
                    f"(scheme, host, optional port; no path), got {item!r}",
                )
            out.append(f"{parts.scheme}://{parts.netloc.lower()}")
        return tuple(out)

    def token_ttl(self) -> float:
        ttl = self.number("TOKEN_TTL", 12 * 3600.0, 60.0, 30 * 86_400.0)
        longest = self.number("TOKEN_MAX_TTL", 86_400.0, 60.0, 30 * 86_400.0)
        if ttl > longest:
            raise self.fail(
                "TOKEN_TTL", f"{ttl:g} s is longer than CALLGUARD_TOKEN_MAX_TTL ({longest:g} s)"
            )
        return ttl

    def inflight(self) -> tuple[int, int]:
        """Per user and in all; a user's bound above the whole's would never apply: refused."""
        per_user = self.integer("USER_INFLIGHT", 64, 1, 100_000)
        total = self.integer("MAX_INFLIGHT", 1000, 1, 1_000_000)
        if per_user > total:
            raise self.fail(
                "USER_INFLIGHT", f"{per_user} is more than CALLGUARD_MAX_INFLIGHT ({total})"
            )
        return per_user, total

    def check_oauth(self) -> None:
        """Sign-in needs all four or none: a half-configured one would fail at the first user."""
        if self.raw("OAUTH_CLIENT_ID") is None:
            if self.raw("OAUTH_CLIENT_SECRET") is not None:
                raise self.fail("OAUTH_CLIENT_ID", "not set, but CALLGUARD_OAUTH_CLIENT_SECRET is")
            return
        for name in OAUTH_VARIABLES:
            if self.raw(name) is None:
                raise self.fail(
                    name, "not set; sign-in through Bitrix24 needs it (docs/install-cloud.md)"
                )

    def settings(self, insecure_dev: bool) -> Settings:
        secret = self.raw("SECRET")
        if secret is None:
            if not insecure_dev:
                raise self.fail(
                    "SECRET",
                    "not set; set it to a random string of 32+ characters "
                    "(python3 -c 'import secrets; print(secrets.token_urlsafe(32))'), "
                    "or pass --insecure-dev for a throw-away one",
                )
            secret = secrets.token_urlsafe(32)
        elif len(secret) < 16:
            raise self.fail("SECRET", "too short: use at least 16 characters (32+ recommended)")
        port_raw = self.env.get("PORT") or self.env.get(PREFIX + "PORT")
        port = 8000
        if port_raw:
            if not port_raw.strip().isdigit() or not 1 <= int(port_raw) <= 65535:
                raise ConfigError(f"PORT: must be a TCP port from 1 to 65535, got {port_raw!r}")
            port = int(port_raw)
        portal = self.url("PORTAL_URL", ("http", "https"))
        if portal is not None and not portal.endswith("/"):
            portal += "/"
        try:
            region = check_region(self.raw("REGION") or DEFAULT_REGION)
        except ValueError as err:
            raise self.fail("REGION", str(err)) from None
        status_field = self.raw("STATUS_FIELD") or DEFAULT_STATUS_FIELD
        if not status_field.startswith("UF_CRM_") or not status_field.replace("_", "").isalnum():
            raise self.fail("STATUS_FIELD", f"must look like UF_CRM_NAME, got {status_field!r}")
        redis_url = self.url("REDIS_URL", ("redis", "rediss", "unix"))
        database_url = self.raw("DATABASE_URL") or database_urls.default_url(self.env)
        try:
            database_urls.check(database_url)
        except database_urls.DatabaseUrlError as err:
            raise self.fail("DATABASE_URL", str(err)) from None
        redis_prefix = self.raw("REDIS_PREFIX") or DEFAULT_REDIS_PREFIX
        if len(redis_prefix) > 64 or not redis_prefix.isprintable() or " " in redis_prefix:
            raise self.fail(
                "REDIS_PREFIX",
                f"must be up to 64 printable characters, no spaces, got {redis_prefix!r}",
            )
        cache_backend = (self.raw("CACHE") or "memory").lower()
        if cache_backend not in ("memory", "redis"):
            raise self.fail("CACHE", f"must be memory or redis, got {cache_backend!r}")
        if cache_backend == "redis" and redis_url is None:
            raise self.fail("CACHE", "'redis' needs CALLGUARD_REDIS_URL to be set")
        admins_raw = self.raw("ADMINS") or ""
        try:
            admins = tuple(user_id(a) for a in admins_raw.split(",") if a.strip())
        except InvalidUserId as err:
            raise self.fail("ADMINS", f"must be comma-separated user ids: {err}") from None
        lang = (self.raw("LANG") or "ru").lower()
        if lang not in LANGS:
            raise self.fail("LANG", f"must be one of {', '.join(LANGS)}, got {lang!r}")
        oauth_server = self.url("OAUTH_SERVER", ("http", "https")) or DEFAULT_OAUTH_SERVER
        self.check_oauth()
        level = (self.raw("LOG_LEVEL") or "info").lower()
        if level not in ("debug", "info", "warning", "error"):
            raise self.fail("LOG_LEVEL", f"must be debug, info, warning or error, got {level!r}")
        log_format = (self.raw("LOG_FORMAT") or "text").lower()
        if log_format not in ("text", "json"):
            raise self.fail("LOG_FORMAT", f"must be text or json, got {log_format!r}")
        warnings: list[str] = []
        if self.raw("TAB_QUEUE") is not None:
            warnings.append(
                f"{PREFIX}TAB_QUEUE is deprecated and ignored: a tab's queue is bounded "
                f"in bytes now; set {PREFIX}TAB_QUEUE_BYTES (default 262144) instead."
            )
        tz = self.raw("TZ") or DEFAULT_TZ
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail("TZ", f"must be a time zone like Europe/Moscow, got {tz!r}") from None
        digest_at = self.raw("DIGEST_AT")
        if digest_at is not None and not _is_clock(digest_at):
            raise self.fail("DIGEST_AT", f"must be a time of day HH:MM, got {digest_at!r}")
        user_inflight, max_inflight = self.inflight()
        return Settings(
            secret=secret,
            host=self.raw("HOST") or "0.0.0.0",
            port=port,
            portal_url=portal,
            directory=self.path("DIRECTORY"),
            rules=self.path("RULES"),
            database_url=database_url,
            database_timeout=self.number("DATABASE_TIMEOUT", 5.0, 0.1, 300.0),
            database_pool=self.integer("DATABASE_POOL", 5, 1, 100),
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            cache_backend=cache_backend,
            webhook_token=self.raw("WEBHOOK_TOKEN"),
            api_key=self.raw("API_KEY"),
            region=region,
            lang=lang,
            status_field=status_field,
            admins=admins,
            cache_ttl=self.number("CACHE_TTL", 300.0, 0.0, 86_400.0),
            negative_ttl=self.number("NEGATIVE_TTL", 60.0, 0.0, 86_400.0),
            cache_size=self.integer("CACHE_SIZE", 10_000, 1, 10_000_000),
            lookup_deadline=self.number("LOOKUP_DEADLINE", 1.5, 0.05, 30.0),
            call_timeout=self.number("CALL_TIMEOUT", 900.0, 1.0, 86_400.0),
            rate_burst=self.integer("RATE_BURST", 50, 1, 10_000),
            rate_per_second=self.number("RATE_PER_SECOND", 2.0, 0.01, 10_000.0),
            rate_reserve=self.integer("RATE_RESERVE", 10, 0, 10_000),
            user_rate_share=self.number("USER_RATE_SHARE", 0.5, 0.01, 1.0),
            tab_queue_bytes=self.integer("TAB_QUEUE_BYTES", 256 * 1024, 16 * 1024, 64 * 1024**2),
            tab_call_rate=self.number("TAB_CALL_RATE", 10.0, 1.0, 1000.0),
            tab_ping_rate=self.number("TAB_PING_RATE", 1.0, 0.01, 1_000_000.0),
            max_connections=self.integer("MAX_CONNECTIONS", 0, 0, 1_000_000) or None,
            max_tabs_per_user=self.integer("MAX_TABS_PER_USER", 30, 1, 10_000),
            header_timeout=self.number("HEADER_TIMEOUT", 10.0, 0.1, 300.0),
            keep_alive=self.integer("KEEP_ALIVE", 5, 1, 3600),
            # A /ws request line of more than 8192 bytes is one websockets cannot read.
            max_url=self.integer("MAX_URL", 8000, 256, 8000),
            max_headers=self.integer("MAX_HEADERS", 16 * 1024, 1024, 1024 * 1024),
            user_inflight=user_inflight,
            max_inflight=max_inflight,
            shutdown_drain=self.number("SHUTDOWN_DRAIN", 5.0, 0.0, 60.0),
            heartbeat=self.number("HEARTBEAT", 20.0, 0.05, 3600.0),
            max_frame=self.integer("MAX_FRAME", 4096, 256, 1_048_576),
            token_leeway=self.number("TOKEN_LEEWAY", 60.0, 0.0, 600.0),
            token_max_ttl=self.number("TOKEN_MAX_TTL", 86_400.0, 60.0, 30 * 86_400.0),
            token_ttl=self.token_ttl(),
            public_url=self.url("PUBLIC_URL", ("http", "https")),
            ledger_days=self.integer("LEDGER_DAYS", 365, 0, 36_500),
            ledger_queue=self.integer("LEDGER_QUEUE", 10_000, 10, 10_000_000),
            report_rows=self.integer("REPORT_ROWS", 50_000, 100, 10_000_000),
            tz=tz,
            digest_at=digest_at,
            log_level=level,
            log_format=log_format,
            allowed_origins=self.origins("ALLOWED_ORIGINS"),
            oauth_client_id=self.raw("OAUTH_CLIENT_ID"),
            oauth_client_secret=self.raw("OAUTH_CLIENT_SECRET"),
            oauth_server=oauth_server.rstrip("/"),
            oauth_state_ttl=self.number("OAUTH_STATE_TTL", 600.0, 10.0, 3600.0),
            oauth_timeout=self.number("OAUTH_TIMEOUT", 10.0, 0.5, 120.0),
            oauth_pending=self.integer("OAUTH_PENDING", 10_000, 1, 1_000_000),
            insecure_dev=insecure_dev and self.raw("SECRET") is None,
            warnings=tuple(warnings),
        )


def _is_clock(value: str) -> bool:
    hours, sep, minutes = value.partition(":")
    return (
        sep == ":"
        and len(hours) == 2
        and len(minutes) == 2
        and hours.isdigit()
        and minutes.isdigit()
        and int(hours) < 24
        and int(minutes) < 60
    )


def mask_url(url: str) -> str:
    """Hide a Bitrix24 webhook code: ``https://p/rest/1/abc123/`` -> ``https://p/rest/1/***/``.
    A URL with credentials (``user:password@``, any ``@``) is masked whole but for its scheme:
    a password may hold ``/`` or ``:``, so where it ends is anyone's guess."""
    if "@" in url:
        scheme, sep, _ = url.partition("://")
        return f"{scheme}://***" if sep and scheme.isalnum() else "***"
    parts = url.split("/")
    for i, part in enumerate(parts[:-1]):
        if part == "rest" and i + 2 < len(parts) and parts[i + 1].isdigit():
            parts[i + 2] = "***"
    return "/".join(parts)
