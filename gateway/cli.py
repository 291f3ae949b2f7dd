"""`callguard` subcommands (design.md §3.1). Each handler parses, calls one module, maps errors.

Exit codes: 0 success, 1 a check found problems, 2 bad input or configuration (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway import __version__

if TYPE_CHECKING:
    from rules.model import Findings


class UsageError(Exception):
    """Bad input or configuration: printed as one line, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        code: int = args.handler(args)
    except UsageError as err:
        print(f"callguard {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callguard",
        description="Colours the Bitrix24 call popup when a manager calls a colleague's client.",
    )
    parser.add_argument("--version", action="version", version=f"callguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("explain", help="print the colour decision for a phone and a caller")
    p.add_argument("--phone", required=True, help="the client's number, as typed")
    p.add_argument("--caller", required=True, help="the calling manager's Bitrix24 user id")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--directory", help="data file (default: the bundled demo data)")
    source.add_argument("--portal", help="Bitrix24 incoming-webhook base URL (REST lookups)")
    p.add_argument("--rules", help="rules file (default: the bundled rules/default.toml)")
    p.add_argument("--region", default=None, help="default phone region (default: RU)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_explain)

    p = sub.add_parser("serve", help="run the gateway (the Procfile's web process)")
    p.add_argument("--host", help="listen address (default: CALLGUARD_HOST or 0.0.0.0)")
    p.add_argument("--port", type=int, help="listen port (default: $PORT or 8000)")
    p.add_argument(
        "--insecure-dev", action="store_true", help="without CALLGUARD_SECRET: a throw-away secret"
    )
    p.set_defaults(handler=_serve)

    p = sub.add_parser("demo", help="the gateway on the bundled demo data, with the demo page")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="listen port (default: 8000)")
    p.set_defaults(handler=_demo)

    p = sub.add_parser("token", help="print a websocket token for a user (needs CALLGUARD_SECRET)")
    p.add_argument("--user", required=True, help="the Bitrix24 user id")
    p.add_argument(
        "--ttl",
        type=float,
        default=12 * 3600,
        help="lifetime, seconds (default 12 h; at most CALLGUARD_TOKEN_MAX_TTL)",
    )
    p.set_defaults(handler=_token)

    p = sub.add_parser("setup-portal", help="create the status field; print the webhook setup")
    p.add_argument("--portal", help="incoming-webhook base URL (default: CALLGUARD_PORTAL_URL)")
    p.add_argument("--rules", help="rules file (default: CALLGUARD_RULES or the bundled one)")
    p.add_argument("--check", action="store_true", help="change nothing; list what is missing")
    p.set_defaults(handler=_setup_portal)

    p = sub.add_parser("fake-portal", help="a Bitrix24 REST + events emulator over a data file")
    p.add_argument("--data", help="data file (default: the bundled demo data)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8090, help="listen port, 0 = any (default: 8090)")
    p.add_argument("--latency", type=float, default=0.0, help="added to every request, ms")
    p.add_argument("--code", default="fake0webhook0code", help="the incoming webhook's code")
    p.add_argument("--rate-limit", metavar="BURST/PER_S", help="leaky bucket, e.g. 50/2 (off)")
    p.add_argument(
        "--without-status-field", action="store_true", help="start without the status field"
    )
    p.set_defaults(handler=_fake_portal)

    p = sub.add_parser("extension", help="write the browser extension for a cloud portal")
    p.add_argument("--portal", required=True, help="the portal's URL, https://example.bitrix24.ru")
    p.add_argument(
        "--gateway", required=True, help="the gateway's public URL (CALLGUARD_PUBLIC_URL)"
    )
    p.add_argument("--out", required=True, help="folder for the unpacked extension (+ FOLDER.zip)")
    p.add_argument("--lang", choices=("ru", "en"), help="its texts (default: CALLGUARD_LANG or ru)")
    p.add_argument("--version", dest="ext_version", help="its version (default: the gateway's)")
    p.set_defaults(handler=_extension)
    p = sub.add_parser("report", help="the calls ledger of a period, as an administrator sees it")
    p.add_argument("--from", dest="first", help="first day, YYYY-MM-DD (default: 6 days ago)")
    p.add_argument("--to", dest="last", help="last day, YYYY-MM-DD (default: today)")
    p.add_argument("--colour", default="red", help="a colour of the rules file, or all (red)")
    p.add_argument("--csv", action="store_true", help="print CSV (design.md §3.7 columns)")
    p.set_defaults(handler=_report)

    p = sub.add_parser("loadtest", help="N tabs on a local gateway process, calls at a fixed rate")
    from gateway.tools.loadtest import add_arguments as loadtest_arguments

    loadtest_arguments(p)
    p.set_defaults(handler=_loadtest)
    return parser


def _explain(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.crm.datafile import DataFileDirectory
    from gateway.crm.dataset import DataFileError, load_dataset
    from gateway.userid import InvalidUserId, user_id
    from rules import InvalidPhone, PolicyError, decide, load_policy, normalize
    from rules.phones import DEFAULT_REGION, check_region

    try:
        region = check_region(args.region or DEFAULT_REGION)
        phone = normalize(args.phone, region)
        policy = load_policy(args.rules)
    except (InvalidPhone, PolicyError, ValueError) as err:
        raise UsageError(str(err)) from None
    try:
        caller = user_id(args.caller)
    except InvalidUserId as err:
        raise UsageError(f"--caller must be a Bitrix24 user id; {err}") from None
    if args.portal:
        findings = _portal_lookup(args.portal, phone, region)
    else:
        try:
            directory = DataFileDirectory(load_dataset(args.directory), region)
        except DataFileError as err:
            raise UsageError(str(err)) from None
        findings = asyncio.run(directory.lookup(phone))
    decision = decide(findings, caller, policy)
    if args.json:
        out = {**decision.to_dict(), "phone": phone, "caller": caller}
        out["findings"] = findings.to_dict()
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print(f"{phone} called by user {caller}: {decision.colour.upper()}", end="")
    print(f" ({decision.background})" if decision.background else "")
    print(f"  rule:   {decision.rule or '-'}")
    print(f"  reason: {decision.reason}")
    for label, items in (
        (
            "companies",
            [
                f"{c.id} {c.title} [{c.status or '-'}] -> {c.assigned_by}"
                for c in findings.companies
            ],
        ),
        (
            "via links",
            [
                f"{c.id} {c.title} [{c.status or '-'}] -> {c.assigned_by}"
                for c in findings.linked_companies
            ],
        ),
        ("contacts", [f"{c.id} {c.name} -> {c.assigned_by}" for c in findings.contacts]),
        (
            "leads",
            [f"{x.id} {x.title} [{x.status or '-'}] -> {x.assigned_by}" for x in findings.leads],
        ),
    ):
        if items:
            print(f"  {label}: " + "; ".join(items))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from gateway.run import launch
    from gateway.run.config import ConfigError

    try:
        launch.serve(args.host, args.port, args.insecure_dev)
    except ConfigError as err:
        raise UsageError(str(err)) from None
    return 0


def _demo(args: argparse.Namespace) -> int:
    from gateway.run import launch
    from gateway.run.config import ConfigError

    try:
        launch.demo(args.host, args.port)
    except ConfigError as err:
        raise UsageError(str(err)) from None
    return 0


def _token(args: argparse.Namespace) -> int:
    from gateway.run import launch
    from gateway.run.config import ConfigError

    try:
        print(launch.token(args.user, args.ttl))
    except (ConfigError, ValueError) as err:
        raise UsageError(str(err)) from None
    return 0


def _report(args: argparse.Namespace) -> int:
    from gateway.ledger.console import ReportError, report_command
    from gateway.ledger.report import BadPeriod
    from gateway.run.config import ConfigError

    try:
        sys.stdout.write(report_command(args.first, args.last, args.colour, args.csv))
    except (ConfigError, BadPeriod, ReportError) as err:
        raise UsageError(str(err)) from None
    return 0


def _setup_portal(args: argparse.Namespace) -> int:
    from gateway.portal.setup import SetupError, command

    try:
        return command(args.portal, args.rules, args.check)
    except SetupError as err:
        raise UsageError(str(err)) from None


def _portal_lookup(url: str, phone: str, region: str) -> Findings:
    """``explain --portal``: one REST lookup, no cache, a generous deadline."""
    import asyncio
    import os

    from gateway.crm.client import BitrixClient, BitrixError
    from gateway.crm.rest import BitrixDirectory
    from gateway.run.config import DEFAULT_STATUS_FIELD, mask_url

    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--portal must be an http(s) URL, got {mask_url(url)!r}")
    field = os.environ.get("CALLGUARD_STATUS_FIELD") or DEFAULT_STATUS_FIELD

    async def run() -> Findings:
        directory = BitrixDirectory(BitrixClient(url), field, region, deadline=10.0)
        try:
            return await directory.lookup(phone)
        finally:
            await directory.close()

    try:
        return asyncio.run(run())
    except BitrixError as err:
        raise UsageError(str(err)) from None


def _fake_portal(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.crm.dataset import DataFileError, load_dataset
    from gateway.tools.fakeportal import FakePortal

    try:
        data = load_dataset(args.data)
    except DataFileError as err:
        raise UsageError(str(err)) from None
    rate: tuple[int, float] | None = None
    if args.rate_limit:
        burst, _, per_second = args.rate_limit.partition("/")
        try:
            rate = (int(burst), float(per_second))
        except ValueError:
            raise UsageError(f"--rate-limit must look like 50/2, not {args.rate_limit!r}") from None

    async def run() -> None:
        portal = FakePortal(
            data,
            code=args.code,
            host=args.host,
            port=args.port,
            latency=args.latency / 1000,
            rate_limit=rate,
            with_status_field=not args.without_status_field,
        )
        await portal.start()
        print(f"fake portal listening on {portal.url}", flush=True)
        print(f"CALLGUARD_PORTAL_URL={portal.webhook_url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await portal.close()

    asyncio.run(run())
    return 0


def _extension(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from gateway.tools.extension import ExtensionError, build, check_version, target

    lang = args.lang or (os.environ.get("CALLGUARD_LANG") or "ru").strip().lower()
    try:
        version = check_version(args.ext_version or __version__)
        folder, archive = build(target(args.portal, args.gateway, lang), Path(args.out), version)
    except (ExtensionError, OSError) as err:
        raise UsageError(str(err)) from None
    print(f"unpacked extension: {folder}")
    print(f"zip for the stores: {archive}")
    return 0


def _loadtest(args: argparse.Namespace) -> int:
    from gateway.tools import loadtest

    try:
        return loadtest.command(args)
    except ValueError as err:
        raise UsageError(str(err)) from None
