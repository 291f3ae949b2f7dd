"""Settings from the environment: defaults, overrides, and one-line errors naming the variable."""

from pathlib import Path

import pytest

from gateway.run.config import ConfigError, Settings, mask_url

SECRET = {"CALLGUARD_SECRET": "s" * 32}


def test_defaults_are_the_embedded_single_process_setup() -> None:
    s = Settings.from_env(SECRET)
    assert (s.portal_url, s.redis_url, s.directory, s.rules) == (None, None, None, None)
    assert (s.region, s.port, s.lookup_deadline) == ("RU", 8000, 1.5)
    assert s.status_field == "UF_CRM_CALLGUARD_STATUS"
    assert s.insecure_dev is False
    assert (s.token_leeway, s.token_max_ttl) == (60.0, 86_400.0)


def test_overrides(tmp_path: Path) -> None:
    data = tmp_path / "data.json"
    data.write_text("{}", encoding="utf-8")
    s = Settings.from_env(
        {
            **SECRET,
            "PORT": "5001",
            "CALLGUARD_PORTAL_URL": "https://portal.example/rest/1/code",
            "CALLGUARD_DIRECTORY": str(data),
            "CALLGUARD_REDIS_URL": "redis://127.0.0.1:6379/0",
            "CALLGUARD_ADMINS": "1, 12",
            "CALLGUARD_REGION": "de",
            "CALLGUARD_CACHE_TTL": "30",
            "CALLGUARD_TOKEN_LEEWAY": "5",
            "CALLGUARD_TOKEN_MAX_TTL": "43200",
        }
    )
    assert (s.token_leeway, s.token_max_ttl) == (5.0, 43_200.0)
    assert s.port == 5001
    assert s.portal_url == "https://portal.example/rest/1/code/"
    assert s.directory == data
    assert s.admins == ("1", "12")
    assert s.region == "DE"
    assert s.cache_ttl == 30.0
    assert s.but(port=1).port == 1


def test_missing_secret_stops_start_up_unless_insecure_dev() -> None:
    with pytest.raises(ConfigError, match=r"^CALLGUARD_SECRET: not set; .*--insecure-dev"):
        Settings.from_env({})
    dev = Settings.from_env({}, insecure_dev=True)
    assert dev.insecure_dev is True
    assert len(dev.secret) >= 32
    assert Settings.from_env({}, insecure_dev=True).secret != dev.secret


def test_connection_limits() -> None:
    s = Settings.from_env(SECRET)
    assert (s.max_connections, s.max_tabs_per_user, s.header_timeout) == (None, 30, 10.0)
    assert (s.keep_alive, s.max_url, s.max_headers) == (5, 8000, 16384)
    s = Settings.from_env(
        {
            **SECRET,
            "CALLGUARD_MAX_CONNECTIONS": "5000",
            "CALLGUARD_MAX_TABS_PER_USER": "3",
            "CALLGUARD_HEADER_TIMEOUT": "2.5",
            "CALLGUARD_KEEP_ALIVE": "30",
            "CALLGUARD_MAX_URL": "4096",
            "CALLGUARD_MAX_HEADERS": "8192",
        }
    )
    assert (s.max_connections, s.max_tabs_per_user, s.header_timeout) == (5000, 3, 2.5)
    assert (s.keep_alive, s.max_url, s.max_headers) == (30, 4096, 8192)
    assert Settings.from_env({**SECRET, "CALLGUARD_MAX_CONNECTIONS": "0"}).max_connections is None
    for name, value, message in [
        ("MAX_CONNECTIONS", "-1", "must be a whole number from 0 to 1000000"),
        ("MAX_TABS_PER_USER", "0", "must be a whole number from 1 to 10000"),
        ("HEADER_TIMEOUT", "0", "must be between 0.1 and 300"),
        ("KEEP_ALIVE", "0.5", "must be a whole number from 1 to 3600"),
        ("MAX_URL", "9000", "must be a whole number from 256 to 8000"),
        ("MAX_HEADERS", "100", "must be a whole number from 1024 to 1048576"),
    ]:
        with pytest.raises(ConfigError, match=f"^CALLGUARD_{name}: {message}"):
            Settings.from_env({**SECRET, f"CALLGUARD_{name}": value})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CALLGUARD_SECRET": "short"}, r"^CALLGUARD_SECRET: too short"),
        ({**SECRET, "PORT": "http"}, r"^PORT: must be a TCP port"),
        ({**SECRET, "PORT": "70000"}, r"^PORT: must be a TCP port"),
        ({**SECRET, "CALLGUARD_CACHE_TTL": "soon"}, r"^CALLGUARD_CACHE_TTL: must be a number"),
        (
            {**SECRET, "CALLGUARD_LOOKUP_DEADLINE": "0"},
            r"^CALLGUARD_LOOKUP_DEADLINE: must be between",
        ),
        (
            {**SECRET, "CALLGUARD_TAB_QUEUE_BYTES": "16"},
            r"^CALLGUARD_TAB_QUEUE_BYTES: must be a whole number from 16384",
        ),
        ({**SECRET, "CALLGUARD_TAB_CALL_RATE": "0"}, r"^CALLGUARD_TAB_CALL_RATE: must be between"),
        ({**SECRET, "CALLGUARD_SHUTDOWN_DRAIN": "-1"}, r"^CALLGUARD_SHUTDOWN_DRAIN: must be"),
        ({**SECRET, "CALLGUARD_LOG_FORMAT": "xml"}, r"^CALLGUARD_LOG_FORMAT: must be text or json"),
        (
            {**SECRET, "CALLGUARD_ALLOWED_ORIGINS": "https://a.example, https://b.example/path"},
            r"^CALLGUARD_ALLOWED_ORIGINS: must be comma-separated origins .*b.example/path",
        ),
        ({**SECRET, "CALLGUARD_ALLOWED_ORIGINS": "*"}, r"^CALLGUARD_ALLOWED_ORIGINS: "),
        (
            {**SECRET, "CALLGUARD_ALLOWED_ORIGINS": "https://u:p@a.example"},
            r"^CALLGUARD_ALLOWED_ORIGINS: ",
        ),
        (
            {**SECRET, "CALLGUARD_PORTAL_URL": "portal.example"},
            r"^CALLGUARD_PORTAL_URL: must be a http/https URL",
        ),
        (
            {**SECRET, "CALLGUARD_REDIS_URL": "http://x"},
            r"^CALLGUARD_REDIS_URL: must be a redis/rediss/unix URL",
        ),
        ({**SECRET, "CALLGUARD_DIRECTORY": "/no/such.json"}, r"^CALLGUARD_DIRECTORY: no such file"),
        ({**SECRET, "CALLGUARD_REGION": "XX"}, r"^CALLGUARD_REGION: unknown phone region"),
        (
            {**SECRET, "CALLGUARD_STATUS_FIELD": "STATUS"},
            r"^CALLGUARD_STATUS_FIELD: must look like",
        ),
        ({**SECRET, "CALLGUARD_ADMINS": "1,bob"}, r"^CALLGUARD_ADMINS: must be comma-separated"),
        ({**SECRET, "CALLGUARD_ADMINS": "1,01"}, r"^CALLGUARD_ADMINS: .*leading zeros"),
        ({**SECRET, "CALLGUARD_TOKEN_LEEWAY": "-1"}, r"^CALLGUARD_TOKEN_LEEWAY: must be between"),
        ({**SECRET, "CALLGUARD_TOKEN_MAX_TTL": "10"}, r"^CALLGUARD_TOKEN_MAX_TTL: must be between"),
        ({**SECRET, "CALLGUARD_TOKEN_MAX_TTL": "day"}, r"^CALLGUARD_TOKEN_MAX_TTL: must be a"),
        ({**SECRET, "CALLGUARD_LOG_LEVEL": "loud"}, r"^CALLGUARD_LOG_LEVEL: must be"),
        ({**SECRET, "CALLGUARD_RATE_RESERVE": "-1"}, r"^CALLGUARD_RATE_RESERVE: must be"),
        ({**SECRET, "CALLGUARD_USER_RATE_SHARE": "2"}, r"^CALLGUARD_USER_RATE_SHARE: must be"),
        ({**SECRET, "CALLGUARD_TZ": "Mars/Olympus"}, r"^CALLGUARD_TZ: must be a time zone"),
        ({**SECRET, "CALLGUARD_DIGEST_AT": "8:00"}, r"^CALLGUARD_DIGEST_AT: must be a time"),
        ({**SECRET, "CALLGUARD_DIGEST_AT": "24:00"}, r"^CALLGUARD_DIGEST_AT: must be a time"),
        ({**SECRET, "CALLGUARD_LEDGER_DAYS": "-1"}, r"^CALLGUARD_LEDGER_DAYS: must be a whole"),
        ({**SECRET, "CALLGUARD_LEDGER_QUEUE": "5"}, r"^CALLGUARD_LEDGER_QUEUE: must be a whole"),
        ({**SECRET, "CALLGUARD_REPORT_ROWS": "lots"}, r"^CALLGUARD_REPORT_ROWS: must be a whole"),
        ({**SECRET, "CALLGUARD_USER_INFLIGHT": "0"}, r"^CALLGUARD_USER_INFLIGHT: must be a whole"),
        ({**SECRET, "CALLGUARD_MAX_INFLIGHT": "many"}, r"^CALLGUARD_MAX_INFLIGHT: must be a whole"),
        (
            {**SECRET, "CALLGUARD_MAX_INFLIGHT": "10"},
            r"^CALLGUARD_USER_INFLIGHT: 64 is more than CALLGUARD_MAX_INFLIGHT \(10\)$",
        ),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_the_tab_queue_is_bounded_in_bytes_and_the_old_frame_count_is_deprecated() -> None:
    settings = Settings.from_env({**SECRET, "CALLGUARD_TAB_QUEUE_BYTES": "65536"})
    assert (settings.tab_queue_bytes, settings.warnings) == (65536, ())
    assert Settings.from_env(SECRET).tab_queue_bytes == 256 * 1024
    old = Settings.from_env({**SECRET, "CALLGUARD_TAB_QUEUE": "16"})
    [warning] = old.warnings
    assert "CALLGUARD_TAB_QUEUE is deprecated and ignored" in warning
    assert "CALLGUARD_TAB_QUEUE_BYTES" in warning


def test_webhook_code_is_masked_in_errors_and_urls() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**SECRET, "CALLGUARD_PORTAL_URL": "ftp://p/rest/1/topsecretcode/"})
    assert "topsecretcode" not in str(err.value)
    assert mask_url("https://p.example/rest/12/abc123/crm.lead.get.json") == (
        "https://p.example/rest/12/***/crm.lead.get.json"
    )
    assert mask_url("https://p.example/other/path") == "https://p.example/other/path"


def test_a_url_with_credentials_is_masked_whole() -> None:
    assert mask_url("redis://user:pa55@redis.example:6379/0") == "redis://***"
    assert mask_url("redis://:pa/ss@redis.example/0") == "redis://***"
    assert mask_url("https://u:p@p.example/rest/1/code/") == "https://***"
    assert mask_url("u:p@p.example") == "***"
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**SECRET, "CALLGUARD_REDIS_URL": "http://user:hunter2@r.example/"})
    assert "hunter2" not in str(err.value)
    assert "r.example" not in str(err.value)


def test_log_format_and_allowed_origins() -> None:
    s = Settings.from_env(
        {
            **SECRET,
            "CALLGUARD_LOG_FORMAT": "JSON",
            "CALLGUARD_ALLOWED_ORIGINS": "https://Portal.example, http://127.0.0.1:8000/",
        }
    )
    assert s.log_format == "json"
    assert s.allowed_origins == ("https://portal.example", "http://127.0.0.1:8000")
    assert Settings.from_env(SECRET).allowed_origins is None  # the default: see origins.py


def test_ledger_and_digest_settings() -> None:
    defaults = Settings.from_env(SECRET)
    assert (defaults.ledger_days, defaults.tz, defaults.digest_at) == (365, "Europe/Moscow", None)
    env = {
        **SECRET,
        "CALLGUARD_LEDGER_DAYS": "0",
        "CALLGUARD_TZ": "Asia/Yekaterinburg",
        "CALLGUARD_DIGEST_AT": "08:30",
        "CALLGUARD_LEDGER_QUEUE": "500",
        "CALLGUARD_REPORT_ROWS": "1000",
    }
    settings = Settings.from_env(env)
    assert (settings.ledger_days, settings.tz, settings.digest_at) == (
        0,
        "Asia/Yekaterinburg",
        "08:30",
    )
    assert (settings.ledger_queue, settings.report_rows) == (500, 1000)


def test_calls_in_flight_are_bounded_per_user_and_in_all() -> None:
    defaults = Settings.from_env(SECRET)
    assert (defaults.user_inflight, defaults.max_inflight) == (64, 1000)
    env = {**SECRET, "CALLGUARD_USER_INFLIGHT": "8", "CALLGUARD_MAX_INFLIGHT": "200"}
    settings = Settings.from_env(env)
    assert (settings.user_inflight, settings.max_inflight) == (8, 200)
