"""``GET /report`` (HTML) and ``GET /report.csv`` (design.md §3.7): the ledger for heads.

Authenticated with the user's Callguard token (``Authorization: Bearer`` or ``?token=``): 401
without a valid one; 403 for a user who is neither an administrator nor a department head
(gateway/ledger/access.py). Parameters: ``from``, ``to`` (dates in ``CALLGUARD_TZ``, inclusive;
default the last 7 days), ``colour`` (default ``red``; ``all``), ``lang`` (``ru``/``en``, default
``CALLGUARD_LANG``). A range with more than ``CALLGUARD_REPORT_ROWS`` calls is refused (413).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gateway.crm import DirectoryError
from gateway.ledger.access import Access, Forbidden
from gateway.ledger.page import render
from gateway.ledger.report import ALL, BadPeriod, Report, parse_period
from gateway.live import wire
from gateway.live.tokens import TokenError, check_token
from gateway.run.runtime import Gateway
from gateway.store.database import DatabaseError
from gateway.store.ledger import TooManyRows
from gateway.web.responses import failure

# The page carries its token in links and the form: never send it on as a Referer, never cache.
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


async def report_page(request: Request) -> Response:
    return await _report(request, as_csv=False)


async def report_csv(request: Request) -> Response:
    return await _report(request, as_csv=True)


def request_token(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("token") or None


async def _report(request: Request, *, as_csv: bool) -> Response:
    gateway: Gateway = request.app.state.gateway
    access: Access = request.app.state.access
    settings = gateway.settings
    query = request.query_params
    token = request_token(request)
    try:
        identity = check_token(
            settings.secret, token, leeway=settings.token_leeway, max_ttl=settings.token_max_ttl
        )
    except TokenError as err:
        return failure(
            401,
            "unauthorized",
            f"{err}: send 'Authorization: Bearer <token>' or ?token=, a Callguard user token",
            **{"WWW-Authenticate": "Bearer"},
        )
    try:
        period = parse_period(query.get("from"), query.get("to"), ZoneInfo(settings.tz))
    except BadPeriod as err:
        return failure(400, "bad_request", str(err))
    colour = query.get("colour") or "red"
    colours = list(gateway.policy.colours)
    if colour not in (*colours, ALL):
        return failure(400, "bad_request", f"'colour' must be one of {', '.join(colours)}, all")
    try:
        callers = await access.callers(identity.user_id)
        rows = await gateway.ledger.rows(
            period.start,
            period.end,
            colour=None if colour == ALL else colour,
            callers=callers,
            limit=settings.report_rows,
        )
        names = await access.names({r.caller_id for r in rows})
    except Forbidden as err:
        return failure(403, "forbidden", f"{err}: the report is for heads and administrators")
    except TooManyRows as err:
        return failure(
            413,
            "too_many_calls",
            f"{err} in this range (CALLGUARD_REPORT_ROWS): choose fewer days",
        )
    except DatabaseError as err:
        return failure(503, "database_unavailable", str(err))
    except DirectoryError as err:  # the portal did not say who is under whom
        return failure(503, "portal_unavailable", str(err))
    report = Report(period, colour, rows, names)
    if as_csv:
        name = f"callguard-{period.first}-{period.last}.csv"
        headers = {**PRIVATE, "Content-Disposition": f'attachment; filename="{name}"'}
        return Response(report.csv(), 200, headers, "text/csv; charset=utf-8")
    lang = wire.lang_of(query.get("lang"), settings.lang)
    return HTMLResponse(render(report, lang, query.get("token"), colours), headers=PRIVATE)
