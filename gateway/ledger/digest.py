"""The morning digest (``CALLGUARD_DIGEST_AT=HH:MM`` in ``CALLGUARD_TZ``): each department head
gets one portal notification a day with the previous day's red calls made in their departments
and below: how many, the top callers, and a link to the report. A head whose departments made
no red call that day gets nothing.

Once per day however many processes run: the process that claims the day in the database
(table ``ledger_digest``) sends it; the others skip. A day that was claimed is not sent again,
even if sending failed half-way (the failures are logged): a second notification is worse than
a missing one. When to run is pure (:func:`next_run`), DST-safe through zoneinfo.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from gateway.crm import DirectoryError
from gateway.ledger.access import Access, headed_by, heads
from gateway.ledger.report import Period
from gateway.live.tokens import issue_token
from gateway.store.database import DatabaseError
from gateway.store.ledger import Ledger, LedgerRow

log = logging.getLogger("callguard.digest")

TOP_CALLERS = 3


def parse_clock(value: str) -> time:
    hours, _, minutes = value.partition(":")
    return time(int(hours), int(minutes))


def next_run(now: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The first moment after ``now`` when the local clock in ``tz`` reads ``at`` (UTC).
    A time the clocks skip (spring forward) runs at the same distance after the jump; a time
    that happens twice (fall back) runs at its first occurrence."""
    local = now.astimezone(tz)
    day = local.date()
    for _ in range(3):
        candidate = datetime.combine(day, at, tzinfo=tz).astimezone(UTC)
        if candidate > now:
            return candidate
        day += timedelta(days=1)
    raise AssertionError("unreachable: a day later is always later")


def message(
    day: date,
    rows: Sequence[LedgerRow],
    names: Mapping[str, str],
    lang: str,
    link: str | None,
) -> str:
    counts = Counter(r.caller_id for r in rows)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], names.get(kv[0], kv[0])))[:TOP_CALLERS]
    who = ", ".join(f"{names.get(c) or '#' + c} — {n}" for c, n in top)
    if lang == "en":
        text = f"Red calls in your departments on {day:%Y-%m-%d}: {len(rows)}. Top callers: {who}."
        return f"{text} Report: {link}" if link else text
    text = f"Красные звонки в ваших отделах за {day:%d.%m.%Y}: {len(rows)}. Чаще всех: {who}."
    return f"{text} Отчёт: {link}" if link else text


class Digest:
    def __init__(
        self,
        ledger: Ledger,
        access: Access,
        *,
        at: time,
        tz: ZoneInfo,
        lang: str = "ru",
        public_url: str | None = None,
        secret: str | None = None,
        link_ttl: float = 86_400.0,
    ) -> None:
        self.ledger = ledger
        self.access = access
        self.at = at
        self.tz = tz
        self.lang = lang
        self.public_url = public_url.rstrip("/") if public_url else None
        self.secret = secret
        self.link_ttl = link_ttl
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def send(self, day: date) -> int:
        """Send ``day``'s digest unless another run claimed it; how many heads were notified."""
        org = self.access.org
        if org is None:
            return 0
        if not await self.ledger.claim_day(day):
            log.info("digest for %s: already sent by another process", day)
            return 0
        period = Period(day, day, self.tz)
        rows = await self.ledger.rows(period.start, period.end, colour="red")
        if not rows:
            return 0
        tree = await self.access.tree()
        names = await self.access.names({r.caller_id for r in rows})
        sent = 0
        for head in sorted(heads(tree)):
            members = set(await org.members(headed_by(head, tree)))
            theirs = [r for r in rows if r.caller_id in members]
            if not theirs:
                continue
            try:
                await org.notify(
                    head, message(day, theirs, names, self.lang, self._link(head, day))
                )
                sent += 1
            except DirectoryError as err:
                log.warning("digest for %s: cannot notify user %s: %s", day, head, err)
        log.info("digest for %s: %d red calls, %d heads notified", day, len(rows), sent)
        return sent

    def _link(self, head: str, day: date) -> str | None:
        if self.public_url is None:
            return None
        query = {"from": day.isoformat(), "to": day.isoformat(), "lang": self.lang}
        if self.secret is not None:
            # The notification is the head's alone; the link works for CALLGUARD_TOKEN_MAX_TTL.
            query["token"] = issue_token(self.secret, head, self.link_ttl)
        return f"{self.public_url}/report?{urlencode(query)}"

    async def _run(self) -> None:
        while True:
            now = datetime.now(UTC)
            due = next_run(now, self.at, self.tz)
            await asyncio.sleep((due - now).total_seconds())
            yesterday = due.astimezone(self.tz).date() - timedelta(days=1)
            try:
                await self.send(yesterday)
            except (DatabaseError, DirectoryError) as err:
                log.warning("digest for %s not sent: %s", yesterday, err)
