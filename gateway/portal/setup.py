"""``callguard setup-portal``: create the company status field, then say what to do by hand.

Idempotent: the field is created only when missing, and list items only for statuses it lacks
(matched by ``XML_ID`` = status code); nothing is renamed or deleted. It records each company's
current status as approved in the gateway's database (``CALLGUARD_DATABASE_URL``) unless one is
recorded, so the first change after the install is judged too. ``--check`` changes nothing and
lists what is missing (exit 1): the field, list items, webhook scopes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.crm.client import BitrixClient, BitrixError
from gateway.crm.statusfield import StatusField
from gateway.portal.events import HANDLED_EVENTS
from gateway.run.config import Settings, mask_url
from gateway.store.approved import ApprovedStatuses
from gateway.store.database import Database, DatabaseError, DatabaseUnavailable
from rules.policy import Policy

SCOPES = ("crm", "user", "department", "im", "telephony")
CALL_TIMEOUT = 30.0
FIELD_LABEL = "Статус Callguard"


@dataclass(slots=True)
class Report:
    done: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


class Setup:
    def __init__(self, client: BitrixClient, policy: Policy, field_name: str) -> None:
        self.client = client
        self.policy = policy
        self.field_name = field_name

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        deadline = time.monotonic() + CALL_TIMEOUT
        return (await self.client.call(method, params, deadline=deadline)).result

    async def field(self) -> dict[str, Any] | None:
        rows = await self.call(
            "crm.company.userfield.list", {"filter": {"FIELD_NAME": self.field_name}}
        )
        return next((r for r in rows or [] if r.get("FIELD_NAME") == self.field_name), None)

    def items(self, start: int = 0) -> list[dict[str, Any]]:
        return [
            {"VALUE": s.name, "XML_ID": s.code, "SORT": 10 * (start + i + 1), "DEF": "N"}
            for i, s in enumerate(self.policy.statuses)
        ]

    def lacking(self, existing: dict[str, Any]) -> list[dict[str, Any]]:
        have = {str(i.get("XML_ID") or "") for i in existing.get("LIST") or []}
        return [i for i in self.items(len(existing.get("LIST") or [])) if i["XML_ID"] not in have]

    async def seed(self, statuses: ApprovedStatuses) -> tuple[int, int]:
        """Record every company's current status as approved unless one is recorded already, so
        that the first change after the install is judged too; (recorded, companies seen)."""
        codes = await StatusField(self.field_name).load(
            self.client, time.monotonic() + CALL_TIMEOUT
        )
        recorded = seen = 0
        start: int | None = 0
        while start is not None:
            answer = await self.client.call(
                "crm.company.list",
                {"select": ["ID", self.field_name], "order": {"ID": "ASC"}, "start": start},
                deadline=time.monotonic() + CALL_TIMEOUT,
            )
            page: dict[str, str] = {}
            for row in answer.result or []:
                raw = row.get(self.field_name)
                item = "" if raw in (None, "", False, 0, "0") else str(raw)
                # As the guard reads it: an item the list does not know is still a value.
                page[str(row["ID"])] = (codes.get(item) or f"#{item}") if item else ""
            seen += len(page)
            # One transaction per page of the portal's list, not one per company.
            recorded += await statuses.set_defaults(page)
            start = answer.next
        return recorded, seen

    async def apply(self) -> Report:
        report = Report()
        existing = await self.field()
        if existing is None:
            ident = await self.call(
                "crm.company.userfield.add",
                {
                    "fields": {
                        # Bitrix prefixes UF_CRM_ itself.
                        "FIELD_NAME": self.field_name.removeprefix("UF_CRM_"),
                        "USER_TYPE_ID": "enumeration",
                        "LABEL": FIELD_LABEL,
                        "MULTIPLE": "N",
                        "MANDATORY": "N",
                        "SHOW_FILTER": "Y",
                        "SETTINGS": {"DISPLAY": "LIST"},
                        "LIST": self.items(),
                    }
                },
            )
            report.done.append(
                f"created the company field {self.field_name} (id {ident}) with statuses "
                + ", ".join(self.policy.status_codes)
            )
            return report
        lacking = self.lacking(existing)
        if lacking:
            await self.call(
                "crm.company.userfield.update", {"id": existing["ID"], "fields": {"LIST": lacking}}
            )
            report.done.append(
                f"added list items {', '.join(i['XML_ID'] for i in lacking)} to {self.field_name}"
            )
        else:
            report.done.append(f"the company field {self.field_name} is in place; nothing to do")
        return report

    async def check(self) -> Report:
        report = Report()
        try:
            scopes = {str(s) for s in await self.call("scope") or []}
        except BitrixError as err:
            report.missing.append(f"the incoming webhook does not answer: {err}")
            return report
        for scope in SCOPES:
            if scope not in scopes:
                report.missing.append(f"the incoming webhook lacks the scope {scope!r}")
            else:
                report.done.append(f"scope {scope}: ok")
        if "crm" not in scopes:
            return report
        existing = await self.field()
        if existing is None:
            report.missing.append(f"no company field {self.field_name}: run callguard setup-portal")
            return report
        if existing.get("USER_TYPE_ID") != "enumeration":
            report.missing.append(
                f"{self.field_name} is of type {existing.get('USER_TYPE_ID')!r}, not a list "
                "(enumeration)"
            )
        for item in self.lacking(existing):
            report.missing.append(
                f"{self.field_name} has no list item with XML_ID {item['XML_ID']} "
                f"(status {item['VALUE']!r}): run callguard setup-portal"
            )
        codes = set(self.policy.status_codes)
        for item in existing.get("LIST") or []:
            code = str(item.get("XML_ID") or "")
            if code not in codes:
                report.done.append(
                    f"note: list item {item.get('VALUE')!r} (XML_ID {code or '-'}) is not in the "
                    "rules file; companies holding it are judged as having an unknown status"
                )
        if not report.missing:
            report.done.append(f"company field {self.field_name}: ok")
        return report


def instructions(public_url: str | None, portal_url: str) -> str:
    """What to enter in the portal by hand (outgoing webhook, init.php); no secrets inside."""
    base = public_url.rstrip("/") if public_url else "https://<gateway>"
    note = "" if public_url else "  (set CALLGUARD_PUBLIC_URL to have it filled in)\n"
    events = "".join(f"    {e}\n" for e in HANDLED_EVENTS)
    return (
        f"Portal: {mask_url(portal_url)}\n\n"
        "1. Outgoing webhook (Applications > Developer resources > Other > Outgoing webhook):\n"
        f"  Handler URL: {base}/bitrix/events\n{note}"
        f"  Events:\n{events}"
        "  Save it, then put its application token into CALLGUARD_WEBHOOK_TOKEN and restart\n"
        "  the gateway.\n\n"
        "2. On the portal's web server (docs/install-box.md, section 5):\n\n"
        "/local/php_interface/callguard_config.php (mode 600, owned by the web server user):\n\n"
        + INIT_CONFIG.replace("https://callguard.example.ru", base)
        + "\n/local/php_interface/init.php:\n\n"
        + INIT_PHP
    )


INIT_CONFIG = """<?php
define('CALLGUARD_URL', 'https://callguard.example.ru');
define('CALLGUARD_SECRET', '<the same value as CALLGUARD_SECRET>');
"""

# The same text as docs/install-box.md shows (a test keeps them equal).
INIT_PHP = r"""<?php
use Bitrix\Main\EventManager;
use Bitrix\Main\Page\Asset;
use Bitrix\Main\Page\AssetLocation;

require_once __DIR__ . '/callguard_config.php';

// callguard-token:begin
/** A JWT (HS256) naming a portal user, for Callguard's websocket (design.md §3.4). */
function callguard_token(string $secret, string $userId, int $ttl = 43200, ?int $now = null): string
{
    $b64 = static function (string $bytes): string {
        return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '=');
    };
    $now = $now ?? time();
    $header = $b64(json_encode(['alg' => 'HS256', 'typ' => 'JWT']));
    $claims = $b64(json_encode(['sub' => $userId, 'iat' => $now, 'exp' => $now + $ttl]));
    $signature = $b64(hash_hmac('sha256', $header . '.' . $claims, $secret, true));
    return $header . '.' . $claims . '.' . $signature;
}
// callguard-token:end

EventManager::getInstance()->addEventHandler('main', 'OnProlog', function () {
    global $USER;
    if (defined('ADMIN_SECTION') && ADMIN_SECTION === true) {
        return;
    }
    if (!is_object($USER) || !$USER->IsAuthorized()) {
        return;
    }
    $token = callguard_token(CALLGUARD_SECRET, (string)$USER->GetID());
    Asset::getInstance()->addString(
        '<script src="' . htmlspecialcharsbx(CALLGUARD_URL) . '/static/callguard.js"'
        . ' data-token="' . htmlspecialcharsbx($token) . '" async></script>',
        false,
        AssetLocation::AFTER_JS_KERNEL
    );
});
"""


class SetupError(Exception):
    """Bad input, configuration, or a portal that refuses: one line, exit code 2."""


def command(portal: str | None, rules: str | None, check: bool) -> int:
    """``callguard setup-portal [--portal URL] [--rules FILE] [--check]``; prints, returns the
    exit code (0 done / all present, 1 ``--check`` found something missing)."""
    import asyncio

    from gateway.run.config import ConfigError
    from rules.policy import PolicyError, load_policy

    try:
        # The secret is not needed here; every other variable is validated as serve does.
        settings = Settings.from_env(insecure_dev=True)
        policy = load_policy(rules or settings.rules)
    except (ConfigError, PolicyError) as err:
        raise SetupError(str(err)) from None
    url = portal or settings.portal_url
    if not url:
        raise SetupError("no portal: set CALLGUARD_PORTAL_URL or pass --portal URL")
    if not url.startswith(("http://", "https://")) or "/rest/" not in url:
        raise SetupError(
            f"--portal must be the incoming webhook URL https://portal/rest/<user>/<code>/, "
            f"got {mask_url(url)!r}"
        )
    return asyncio.run(_run(url, policy, settings, check))


async def _run(url: str, policy: Policy, settings: Settings, check: bool) -> int:
    client = BitrixClient(url)
    setup = Setup(client, policy, settings.status_field)
    # Opened first: a database the gateway could not use either stops setup before the portal
    # is touched. ``--check`` changes nothing, so it does not create one.
    database = None if check else await _open_database(settings)
    try:
        report = await (setup.check() if check else setup.apply())
        if database is not None:
            report.done.append(await _seed(setup, database))
    except BitrixError as err:
        raise SetupError(str(err)) from None
    except DatabaseError as err:
        raise SetupError(f"{err}; the baseline was not recorded, run setup-portal again") from None
    finally:
        await client.close()
        if database is not None:
            await database.close()
    for line in report.done:
        print(line)
    if check:
        for line in report.missing:
            print(f"MISSING: {line}")
        print("all present" if not report.missing else f"{len(report.missing)} missing")
        return 1 if report.missing else 0
    print()
    print(instructions(settings.public_url, url))
    return 0


async def _open_database(settings: Settings) -> Database:
    database = Database(settings.database_url, timeout=settings.database_timeout, pool_size=1)
    try:
        await database.open()
    except DatabaseUnavailable as err:
        raise SetupError(str(err)) from None
    return database


async def _seed(setup: Setup, database: Database) -> str:
    recorded, total = await setup.seed(ApprovedStatuses(database))
    return (
        f"recorded the current status of {recorded} companies as approved "
        f"({total - recorded} already had one) in {database.shown}"
    )
