"""The report page: server-rendered HTML, its chart an inline SVG (no script, no CDN: the
pages' CSP allows neither), in Russian or English. Every name is escaped."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from gateway.ledger.report import ALL, Report, Total

TEXTS = {
    "ru": {
        "title": "Звонки чужим клиентам",
        "period": "Период",
        "from": "с",
        "to": "по",
        "colour": "Цвет",
        "all": "все",
        "show": "Показать",
        "csv": "Скачать CSV",
        "chart": "Красные звонки по дням",
        "callers": "Кто звонил",
        "owners": "Чьим клиентам",
        "calls": "Звонки",
        "total": "Всего звонков",
        "none": "Звонков за период нет.",
        "time": "Время",
        "caller": "Кто звонил",
        "direction": "Направление",
        "client": "Клиент",
        "owner": "Ответственный",
        "phone": "Номер",
        "rule": "Правило",
        "in": "входящий",
        "out": "исходящий",
    },
    "en": {
        "title": "Calls to other managers' clients",
        "period": "Period",
        "from": "from",
        "to": "to",
        "colour": "Colour",
        "all": "all",
        "show": "Show",
        "csv": "Download CSV",
        "chart": "Red calls per day",
        "callers": "Who called",
        "owners": "Whose clients",
        "calls": "Calls",
        "total": "Calls in total",
        "none": "No calls in this period.",
        "time": "Time",
        "caller": "Caller",
        "direction": "Direction",
        "client": "Client",
        "owner": "Responsible",
        "phone": "Number",
        "rule": "Rule",
        "in": "incoming",
        "out": "outgoing",
    },
}
STYLE = (
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}"
    "table{border-collapse:collapse;margin:8px 0 24px}"
    "td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}"
    "th{background:#f4f4f4}.n{text-align:right}.totals{display:flex;gap:48px;flex-wrap:wrap}"
    "svg .bar{fill:#d93025}svg text{font-size:10px;fill:#555}"
)
CHART_HEIGHT = 120
BAR_WIDTH = 18
GAP = 4


def render(report: Report, lang: str, token: str | None, colours: list[str]) -> str:
    t = TEXTS.get(lang, TEXTS["ru"])
    period = report.period
    query = {"from": period.first.isoformat(), "to": period.last.isoformat()}
    query |= {"colour": report.colour, "lang": lang}
    if token:
        query["token"] = token
    options = "".join(
        f'<option value="{escape(c)}"{" selected" if c == report.colour else ""}>'
        f"{escape(t['all'] if c == ALL else c)}</option>"
        for c in [*colours, ALL]
    )
    hidden = f'<input type="hidden" name="token" value="{escape(token)}">' if token else ""
    parts = [
        "<!doctype html>",
        f'<html lang="{lang}"><head><meta charset="utf-8">',
        f"<title>{escape(t['title'])}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(t['title'])}</h1>",
        '<form method="get" action="report">',
        f"{escape(t['period'])}: {escape(t['from'])} ",
        f'<input type="date" name="from" value="{period.first.isoformat()}"> {escape(t["to"])} ',
        f'<input type="date" name="to" value="{period.last.isoformat()}"> ',
        f'{escape(t["colour"])}: <select name="colour">{options}</select>',
        f'<input type="hidden" name="lang" value="{lang}">{hidden} ',
        f'<button type="submit">{escape(t["show"])}</button> ',
        f'<a href="report.csv?{escape(urlencode(query))}">{escape(t["csv"])}</a></form>',
    ]
    parts += [f"<h2>{escape(t['chart'])}</h2>", chart(report)]
    parts.append(f"<p>{escape(t['total'])}: <b>{len(report.rows)}</b></p>")
    parts.append('<div class="totals">')
    parts.append(_totals(t["callers"], t["calls"], report.by_caller()))
    parts.append(_totals(t["owners"], t["calls"], report.by_owner()))
    parts.append("</div>")
    parts.append(_list(report, t))
    parts.append("</body></html>")
    return "".join(parts)


def chart(report: Report) -> str:
    """One bar per day that had red calls, its height scaled to the busiest day."""
    days = report.red_per_day()
    top = max((n for _, n in days), default=0) or 1
    width = max(len(days), 1) * (BAR_WIDTH + GAP)
    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{CHART_HEIGHT + 30}" role="img">'
    ]
    for i, (day, count) in enumerate(days):
        x = i * (BAR_WIDTH + GAP)
        if count:
            height = max(round(CHART_HEIGHT * count / top), 2)
            y = CHART_HEIGHT - height
            out.append(
                f'<rect class="bar" data-day="{day.isoformat()}" data-calls="{count}" x="{x}" '
                f'y="{y}" width="{BAR_WIDTH}" height="{height}"><title>{day.isoformat()}: '
                f"{count}</title></rect>"
                f'<text x="{x + BAR_WIDTH / 2}" y="{y - 2}" text-anchor="middle">{count}</text>'
            )
        if len(days) <= 31 or day.day == 1:
            out.append(
                f'<text x="{x + BAR_WIDTH / 2}" y="{CHART_HEIGHT + 14}" text-anchor="middle">'
                f"{day.day}</text>"
            )
    out.append("</svg>")
    return "".join(out)


def _totals(title: str, calls: str, totals: list[Total]) -> str:
    rows = "".join(
        f'<tr><td>{escape(x.name)}</td><td class="n">{x.calls}</td></tr>' for x in totals
    )
    return (
        f'<section><h2>{escape(title)}</h2><table><tr><th></th><th class="n">'
        f"{escape(calls)}</th></tr>{rows}</table></section>"
    )


def _list(report: Report, t: dict[str, str]) -> str:
    if not report.rows:
        return f"<p>{escape(t['none'])}</p>"
    head = "".join(
        f"<th>{escape(t[k])}</th>"
        for k in ("time", "caller", "direction", "client", "owner", "phone", "rule")
    )
    body = []
    for r in reversed(report.rows):  # newest first
        client = r.entity_title or (f"{r.entity_type} {r.entity_id}" if r.entity_id else "")
        body.append(
            f'<tr class="call colour-{escape(r.colour)}">'
            f"<td>{report.local(r.time).strftime('%Y-%m-%d %H:%M')}</td>"
            f"<td>{escape(report.caller_name(r.caller_id))}</td>"
            f"<td>{escape(t.get(r.direction, r.direction))}</td>"
            f"<td>{escape(client)}</td>"
            f"<td>{escape(r.owner_name or '')}</td>"
            f"<td>…{escape(r.phone_last4)}</td>"
            f"<td>{escape(r.rule or '')}</td></tr>"
        )
    return f"<h2>{escape(t['calls'])}</h2><table><tr>{head}</tr>{''.join(body)}</table>"
