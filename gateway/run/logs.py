"""Logging for the server process: one stderr handler for every logger (``callguard.*``, uvicorn,
libraries), text or JSON (``CALLGUARD_LOG_FORMAT``), and nothing secret in any line.

Text: ``2026-01-31 12:00:00,123 INFO callguard.statuses: message``. JSON: one object a line
with ``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``msg``, and ``exc`` (a traceback) if any.

Every message and traceback goes through :class:`Redactor` before it is written: the configured
secrets (signing secret, API key, application token, the webhook code of the portal URL) become
``***``, and so does anything shaped like a token (a JWT, ``token=`` and similar query parameters,
a ``Bearer`` credential, ``/rest/<id>/<code>``, ``user:password@`` in a URL). Phone numbers keep
only their last 4 digits (``rules.phones.masked``). Call sites mask what they know is a phone or
a secret anyway; this is the net under them, and the only thing between uvicorn's access and
websocket lines (``/ws?token=…``) and the log.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable
from types import TracebackType

import orjson

from gateway.run.config import Settings
from rules.phones import masked

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Secrets shorter than this are not searched for: they would mask ordinary words.
MIN_SECRET = 6

_JWT = re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]+")
_QUERY = re.compile(
    r"(?i)((?:token|api_key|apikey|key|secret|password|passwd|auth|code)(?:\]|%5D)?=)"
    r"[^&\s\"'<>]+"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',]+")
_REST_CODE = re.compile(r"(/rest/\d+/)[^/\s\"'?]+")
_CREDENTIALS = re.compile(r"(\b[a-zA-Z][\w+.-]*://)[^/\s@\"']+@")
# 7+ digits, possibly split by spaces, dashes or brackets: a phone number in any spelling. Not a
# part of a longer word or number (ids, hex, floats, addresses).
_PHONE = re.compile(r"(?<![\w.,:/])\+?\(?\d(?:[\s()-]{0,2}\d){6,}(?![\w]|[.,:]\d)")


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        known = {s for s in secrets if s and len(s) >= MIN_SECRET}
        # Longest first: a secret that contains another is masked whole.
        self.secrets = sorted(known, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        text = _JWT.sub("***", text)
        text = _QUERY.sub(r"\1***", text)
        text = _BEARER.sub(r"\1***", text)
        text = _REST_CODE.sub(r"\1***", text)
        text = _CREDENTIALS.sub(r"\1***@", text)
        return _PHONE.sub(lambda m: masked(m.group(0)), text)


def settings_secrets(settings: Settings) -> list[str | None]:
    code = None
    if settings.portal_url:
        match = re.search(r"/rest/\d+/([^/?#]+)", settings.portal_url)
        code = match.group(1) if match else None
    return [settings.secret, settings.api_key, settings.webhook_token, code]


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: "
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return line + self.redact(text)


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": self.redact(record.getMessage()),
        }
        if record.exc_info:
            doc["exc"] = self.redact(self.formatException(record.exc_info))
        return orjson.dumps(doc).decode()


_configured = False


def configure(settings: Settings) -> None:
    """Route every logger to one stderr handler; the first call wins (one server process)."""
    global _configured
    if _configured:
        return
    _configured = True
    redact = Redactor(settings_secrets(settings))
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(redact))
    else:
        handler.setFormatter(TextFormatter(redact))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)  # libraries: warnings and errors
    logging.getLogger("callguard").setLevel(LEVELS[settings.log_level])
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    logging.captureWarnings(True)  # warnings.warn(...) lines, formatted like the rest
    sys.excepthook = _log_uncaught


def _log_uncaught(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None
) -> None:
    logging.getLogger("callguard").critical("uncaught exception", exc_info=(kind, error, tb))
