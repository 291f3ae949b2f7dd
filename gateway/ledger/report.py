"""What a head sees: the calls of a period, totals per caller and per owner, red calls per day,
and the CSV (design.md §3.7). Pure: the web endpoints and the CLI fetch rows and render these.

Dates are calendar days in ``CALLGUARD_TZ``: ``from`` and ``to`` both inclusive.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.store.ledger import LedgerRow

CSV_COLUMNS = (
    "time",
    "call_id",
    "caller_id",
    "caller_name",
    "direction",
    "colour",
    "rule",
    "entity_type",
    "entity_id",
    "entity_title",
    "owner_id",
    "owner_name",
    "phone_last4",
)
DEFAULT_DAYS = 7  # without from/to: the last week, today included
ALL = "all"  # colour=all: every colour


class BadPeriod(ValueError):
    """``from``/``to`` are not dates, or ``from`` is after ``to``; the message says which."""


@dataclass(frozen=True, slots=True)
class Period:
    first: date
    last: date
    tz: ZoneInfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), self.tz).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), self.tz).astimezone(UTC)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def day_of(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()


def parse_period(
    first: str | None, last: str | None, tz: ZoneInfo, now: datetime | None = None
) -> Period:
    today = (now or datetime.now(UTC)).astimezone(tz).date()
    try:
        end = date.fromisoformat(last) if last else today
    except ValueError:
        raise BadPeriod(f"'to' must be a date YYYY-MM-DD, got {last!r}") from None
    try:
        start = date.fromisoformat(first) if first else end - timedelta(days=DEFAULT_DAYS - 1)
    except ValueError:
        raise BadPeriod(f"'from' must be a date YYYY-MM-DD, got {first!r}") from None
    if start > end:
        raise BadPeriod(f"'from' ({start}) is after 'to' ({end})")
    return Period(start, end, tz)


@dataclass(frozen=True, slots=True)
class Total:
    id: str
    name: str
    calls: int


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    colour: str  # a colour name, or ALL
    rows: Sequence[LedgerRow]
    names: Mapping[str, str]  # caller id -> name

    def caller_name(self, caller_id: str) -> str:
        return self.names.get(caller_id) or f"#{caller_id}"

    def by_caller(self) -> list[Total]:
        counts = Counter(r.caller_id for r in self.rows)
        return _ranked({c: self.caller_name(c) for c in counts}, counts)

    def by_owner(self) -> list[Total]:
        counts = Counter(r.owner_id for r in self.rows if r.owner_id)
        names = {r.owner_id: r.owner_name or f"#{r.owner_id}" for r in self.rows if r.owner_id}
        return _ranked(names, counts)

    def red_per_day(self) -> list[tuple[date, int]]:
        counts = Counter(self.period.day_of(r.time) for r in self.rows if r.colour == "red")
        return [(day, counts.get(day, 0)) for day in self.period.days]

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.period.tz)

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for r in self.rows:
            writer.writerow(
                [
                    self.local(r.time).isoformat(timespec="seconds"),
                    r.call_id,
                    r.caller_id,
                    self.names.get(r.caller_id, ""),
                    r.direction,
                    r.colour,
                    r.rule or "",
                    r.entity_type or "",
                    r.entity_id or "",
                    _cell(r.entity_title or ""),
                    r.owner_id or "",
                    _cell(r.owner_name or ""),
                    r.phone_last4,
                ]
            )
        return out.getvalue()


def _ranked(names: Mapping[str, str], counts: Mapping[str, int]) -> list[Total]:
    totals = [Total(i, names.get(i) or f"#{i}", n) for i, n in counts.items()]
    return sorted(totals, key=lambda t: (-t.calls, t.name, t.id))


def _cell(text: str) -> str:
    """A CRM title is user input: one starting with = + - @ would run as a spreadsheet formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
