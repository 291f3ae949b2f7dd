"""Bitrix24 REST client: one aiohttp session per portal, deadlines, a client-side rate limit.

Configured by the incoming-webhook base (``CALLGUARD_PORTAL_URL``, ``https://p/rest/1/<code>/``);
each method is a JSON POST to ``<base><method>.json`` (reference/bitrix24.md §6). The webhook code
is a password: it never appears in an exception text or a log line (only ``mask_url``'s ``***``).

Exceptions, all with ``method``, ``error``, ``description`` and HTTP ``status`` (None: no answer)::

    DirectoryError
     └── BitrixError                the portal gave no usable answer (any other error envelope:
          │                         400 "Not found", 500 ERROR_CORE, ...)
          ├── BitrixConfigError     401/403: wrong webhook code, missing scope, no rights; health()
          │                         turns not-ok and calls fail fast for a while (no retry loop)
          ├── BitrixRateLimited     QUERY_LIMIT_EXCEEDED (503, or 429 in 2024 docs), or our own
          │                         budget (budget.py) cannot let it through before the deadline
          ├── BitrixMethodPaused    429 OPERATION_TIME_LIMIT: this method waits for
          │                         ``operating_reset_at``
          └── BitrixTransportError  no connection, or the body is not a JSON envelope
               └── BitrixTimeout    the deadline passed
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from gateway.crm import DirectoryError
from gateway.crm import metrics as m
from gateway.crm.budget import Budget, BudgetExhausted, Lane, Level, LocalLevel, current_lane
from gateway.run.config import mask_url

CONFIG_ERRORS = frozenset(
    {
        "NO_AUTH_FOUND",
        "expired_token",
        "invalid_token",
        "ACCESS_DENIED",
        "INVALID_CREDENTIALS",
        "insufficient_scope",
        "user_access_error",
        "WRONG_AUTH_TYPE",
        "INVALID_REQUEST",
    }
)


class BitrixError(DirectoryError):
    def __init__(
        self, method: str, error: str, description: str, status: int | None = None, portal: str = ""
    ) -> None:
        self.method = method
        self.error = error
        self.description = description
        self.status = status
        where = f" ({portal})" if portal else ""
        answer = f"HTTP {status} " if status is not None else ""
        super().__init__(f"{method}{where}: {answer}{error or '-'}: {description}")


class BitrixConfigError(BitrixError):
    pass


class BitrixRateLimited(BitrixError):
    pass


class BitrixMethodPaused(BitrixError):
    pass


class BitrixTransportError(BitrixError):
    pass


class BitrixTimeout(BitrixTransportError, TimeoutError):
    pass


@dataclass(frozen=True, slots=True)
class Limits:
    """Connection and rate limits of one portal client."""

    connections: int = 32
    keepalive: float = 30.0
    rate_burst: int = 50
    rate_per_second: float = 2.0
    rate_reserve: int = 10  # places at the top of the bucket only live lookups may take
    user_share: float = 1.0  # share of the bucket one user's lookups may hold (1.0: no cap)
    config_retry_after: float = 30.0  # after a 401/403 calls fail fast this long, then one probe
    default_pause: float = 60.0  # OPERATION_TIME_LIMIT without operating_reset_at


@dataclass(frozen=True, slots=True)
class Answer:
    result: Any
    total: int | None = None
    next: int | None = None


@dataclass(frozen=True, slots=True)
class BatchAnswer:
    results: dict[str, Any]
    errors: dict[str, dict[str, str]]


class BitrixClient:
    def __init__(
        self, base_url: str, limits: Limits = Limits(), *, level: Level | None = None
    ) -> None:
        """``level``: where the budget's level lives (default: this process; see budgetredis)."""
        self.base = base_url if base_url.endswith("/") else base_url + "/"
        self.portal = mask_url(self.base)
        secret = [
            a for a, b in zip(self.base.split("/"), self.portal.split("/"), strict=True) if a != b
        ]
        self._secrets = [s for s in secret if s]
        self.limits = limits
        self.budget = Budget(
            level or LocalLevel(limits.rate_burst, limits.rate_per_second),
            limits.rate_burst,
            limits.rate_per_second,
            reserve=limits.rate_reserve,
            per_user=limits.user_share,
        )
        self._session: aiohttp.ClientSession | None = None
        self._paused: dict[str, float] = {}  # method -> monotonic time it may run again
        self._config_error: tuple[str, float] | None = None  # (reason, monotonic time)

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _fail(
        self,
        cls: type[BitrixError],
        method: str,
        error: str,
        description: str,
        status: int | None = None,
    ) -> BitrixError:
        m.rest_errors.labels(error or "EMPTY").inc()
        return cls(method, error, self.mask(description), status, self.portal)

    # -- calls -------------------------------------------------------------------------------
    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        deadline: float,
        background: bool | None = None,
    ) -> Answer:
        """Call ``method``; ``deadline`` is a ``time.monotonic()`` instant. ``background``: the
        budget's lane (None: the context's, see budget.background(); live by default). One
        retry after QUERY_LIMIT_EXCEEDED, only if the budget lets it through before the
        deadline."""
        lane = current_lane(background)
        for attempt in (1, 2):
            self._check_allowed(method)
            await self._admit(method, deadline, lane)
            try:
                return await self._send(method, params or {}, deadline)
            except BitrixRateLimited:
                await self.budget.fill()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def batch(
        self,
        commands: Mapping[str, str],
        *,
        deadline: float,
        halt: bool = False,
        background: bool | None = None,
    ) -> BatchAnswer:
        """One ``batch`` request; sub-request errors are returned, not raised (turn one into an
        exception with :meth:`sub_error`). A paused method in ``commands`` fails it unsent."""
        for text in commands.values():
            self._check_allowed(text.partition("?")[0])
        answer = await self.call(
            "batch",
            {"halt": int(halt), "cmd": dict(commands)},
            deadline=deadline,
            background=background,
        )
        body = answer.result if isinstance(answer.result, dict) else {}
        results, errors = _php_map(body.get("result")), _php_map(body.get("result_error"))
        for key, err in errors.items():
            code = str(err.get("error") or "") if isinstance(err, dict) else ""
            m.rest_errors.labels(code or "EMPTY").inc()
            if code == "OPERATION_TIME_LIMIT":
                name = commands.get(key, "").partition("?")[0]
                self._pause(name, _php_map(body.get("result_time")).get(key))
        return BatchAnswer(results, errors)

    def sub_error(self, method: str, error: Any) -> BitrixError:
        """The exception for a batch sub-request's error (already counted by :meth:`batch`)."""
        code = str(error.get("error") or "") if isinstance(error, dict) else ""
        text = str(error.get("error_description") or "") if isinstance(error, dict) else ""
        if code in CONFIG_ERRORS:
            self._config_error = (f"{method}: {code}: {self.mask(text)}", time.monotonic())
            return BitrixConfigError(method, code, self.mask(text), None, self.portal)
        cls = {
            "QUERY_LIMIT_EXCEEDED": BitrixRateLimited,
            "OPERATION_TIME_LIMIT": BitrixMethodPaused,
        }
        return cls.get(code, BitrixError)(method, code, self.mask(text), None, self.portal)

    def _check_allowed(self, method: str) -> None:
        now = time.monotonic()
        if self._config_error is not None:
            reason, at = self._config_error
            if now - at < self.limits.config_retry_after:
                raise self._fail(BitrixConfigError, method, "CONFIGURATION", reason)
        until = self._paused.get(method)
        if until is not None:
            if now < until:
                raise self._fail(
                    BitrixMethodPaused,
                    method,
                    "OPERATION_TIME_LIMIT",
                    f"method paused for {until - now:.1f} s more",
                )
            del self._paused[method]

    async def _admit(self, method: str, deadline: float, lane: Lane) -> None:
        try:
            await self.budget.acquire(lane, deadline)
        except BudgetExhausted as err:
            # Fail fast: queueing past the deadline only delays the caller's fail-open. Nothing
            # was taken from the budget for a request that is not sent.
            raise self._fail(
                BitrixRateLimited, method, "QUERY_LIMIT_EXCEEDED", f"client-side rate limit: {err}"
            ) from None

    def _session_for_loop(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.limits.connections, keepalive_timeout=self.limits.keepalive
            )
            self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
        return self._session

    async def _send(self, method: str, params: Mapping[str, Any], deadline: float) -> Answer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._fail(BitrixTimeout, method, "TIMEOUT", "deadline passed before the request")
        m.rest_requests.labels(method).inc()
        session = self._session_for_loop()
        try:
            async with session.post(
                f"{self.base}{method}.json",
                data=orjson.dumps(params),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=remaining),
            ) as resp:
                status, raw = resp.status, await resp.read()
        except TimeoutError:
            raise self._fail(
                BitrixTimeout, method, "TIMEOUT", f"no answer within {remaining:.2f} s"
            ) from None
        except aiohttp.ClientError as err:
            raise self._fail(
                BitrixTransportError, method, "TRANSPORT", f"{type(err).__name__}: {err}"
            ) from None
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise self._fail(
                BitrixTransportError,
                method,
                "BAD_RESPONSE",
                f"the answer is not JSON ({len(raw)} bytes)",
                status,
            ) from None
        if not isinstance(doc, dict) or ("result" not in doc and "error" not in doc):
            raise self._fail(
                BitrixTransportError,
                method,
                "BAD_RESPONSE",
                "the answer is not a REST envelope",
                status,
            )
        if "error" in doc or status >= 400:
            raise self._error(method, status, doc)
        self._config_error = None
        total, nxt = doc.get("total"), doc.get("next")
        return Answer(
            doc["result"],
            total if isinstance(total, int) else None,
            nxt if isinstance(nxt, int) else None,
        )

    def _error(self, method: str, status: int, doc: dict[str, Any]) -> BitrixError:
        error = str(doc.get("error") or "")
        description = str(doc.get("error_description") or "")
        if status in (401, 403) or error in CONFIG_ERRORS:
            self._config_error = (
                f"HTTP {status} {error}: {self.mask(description)}",
                time.monotonic(),
            )
            return self._fail(BitrixConfigError, method, error, description, status)
        if error == "QUERY_LIMIT_EXCEEDED":
            return self._fail(BitrixRateLimited, method, error, description, status)
        if error == "OPERATION_TIME_LIMIT":
            self._pause(method, doc.get("time"))
            return self._fail(BitrixMethodPaused, method, error, description, status)
        return self._fail(BitrixError, method, error, description, status)

    def _pause(self, method: str, timing: Any) -> None:
        reset_at = timing.get("operating_reset_at") if isinstance(timing, dict) else None
        if isinstance(reset_at, int | float) and not isinstance(reset_at, bool):
            pause = min(max(float(reset_at) - time.time(), 0.0), 600.0)
        else:
            pause = self.limits.default_pause
        self._paused[method] = time.monotonic() + pause

    # -- state -------------------------------------------------------------------------------
    def health(self) -> dict[str, object]:
        now = time.monotonic()
        paused = {k: round(v - now, 1) for k, v in self._paused.items() if v > now}
        reason = self._config_error[0] if self._config_error else None
        return {
            "ok": reason is None,
            "source": "bitrix24",
            "reason": reason,
            "portal": self.portal,
            "paused": paused,
        }

    async def close(self) -> None:
        closer = getattr(self.budget.level, "close", None)
        if closer is not None:
            await closer()
        if self._session is not None:
            await self._session.close()
            self._session = None


def _php_map(value: Any) -> dict[str, Any]:
    """A PHP array from JSON: ``[]`` (empty) or a list (keys 0..n-1) or an object, as a dict."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}
