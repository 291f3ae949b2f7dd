"""``callguard report --from D --to D [--csv]``: the report at the console, as an administrator
sees it (every call), read from ``CALLGUARD_DATABASE_URL``; names from the directory."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

from gateway.crm import DirectoryError
from gateway.crm.build import build_directory
from gateway.ledger.page import TEXTS
from gateway.ledger.report import ALL, Report, parse_period
from gateway.ledger.wiring import org_chart
from gateway.run.config import Settings
from gateway.store.database import Database, DatabaseError
from gateway.store.ledger import Ledger, TooManyRows

BAR = 40  # characters of the busiest day's bar


class ReportError(Exception):
    """The report cannot be made; one line for the console."""


def report_command(first: str | None, last: str | None, colour: str, as_csv: bool) -> str:
    settings = Settings.from_env(insecure_dev=True)  # the secret is not needed to read
    return asyncio.run(_report(settings, first, last, colour, as_csv))


async def _report(
    settings: Settings, first: str | None, last: str | None, colour: str, as_csv: bool
) -> str:
    period = parse_period(first, last, ZoneInfo(settings.tz))
    database = Database(settings.database_url, timeout=settings.database_timeout)
    directory = build_directory(settings)
    try:
        await database.open()
        rows = await Ledger(database).rows(
            period.start,
            period.end,
            colour=None if colour == ALL else colour,
            limit=settings.report_rows,
        )
        org, _ = org_chart(directory)
        names = await org.names({r.caller_id for r in rows}) if org and rows else {}
    except TooManyRows as err:
        raise ReportError(f"{err} (CALLGUARD_REPORT_ROWS): choose fewer days") from None
    except (DatabaseError, DirectoryError) as err:
        raise ReportError(str(err)) from None
    finally:
        await directory.close()
        await database.close()
    report = Report(period, colour, rows, names)
    return report.csv() if as_csv else text(report, settings.lang)


def text(report: Report, lang: str) -> str:
    t = TEXTS.get(lang, TEXTS["ru"])
    period = report.period
    lines = [f"{t['title']}: {period.first} — {period.last} ({t['colour']}: {report.colour})"]
    lines.append(f"{t['total']}: {len(report.rows)}")
    days = report.red_per_day()
    top = max((n for _, n in days), default=0)
    lines += ["", f"{t['chart']}:"]
    for day, count in days:
        bar = "█" * (round(BAR * count / top) if top else 0)
        lines.append(f"  {day}  {count:4d}  {bar}".rstrip())
    for title, totals in ((t["callers"], report.by_caller()), (t["owners"], report.by_owner())):
        lines += ["", f"{title}:"]
        lines += [f"  {x.calls:4d}  {x.name}" for x in totals]
    lines += ["", f"{t['calls']}:"]
    for r in report.rows:
        client = r.entity_title or r.entity_id or ""
        owner = f" ({r.owner_name})" if r.owner_name else ""
        lines.append(
            f"  {report.local(r.time):%Y-%m-%d %H:%M}  {report.caller_name(r.caller_id)} "
            f"[{t.get(r.direction, r.direction)}] → {client}{owner}  …{r.phone_last4}  {r.colour}"
        )
    return "\n".join(lines) + "\n"
