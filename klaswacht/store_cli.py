"""The store's commands: events, grant, ban, users add, roster import, export and forget.

Registered on the one `klaswacht` parser by `add_commands`; every staff action is audited under
`--actor` (default `cli:<login name>`). Times typed by people are the school's local time.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from filters.hosts import HOST_CATEGORIES, parse_domain
from filters.policy import DEFAULT_SCHOOL
from filters.terms import ListError
from klaswacht.loading import DEFAULT_POLICY, load_policy
from klaswacht.store import (
    DATABASE_ENV,
    SCHOOL_ENV,
    Store,
    StoreError,
    default_data_dir,
    default_database_url,
    gateway_school,
)
from klaswacht.store.model import BOARD_ROLES, ROLES
from klaswacht.store.roster import parse_roster

SCHOOL_TZ = ZoneInfo("Europe/Amsterdam")


def parse_local_time(text: str, now: datetime) -> datetime:
    """`HH:MM` today, or an ISO 8601 date or time (local unless it has an offset); ValueError if neither."""
    text = text.strip()
    clock = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if clock:
        hour, minute = int(clock[1]), int(clock[2])
        if hour > 23 or minute > 59:
            raise ValueError(f"{text!r} is not a time of day")
        return datetime.combine(now.astimezone(SCHOOL_TZ).date(), time(hour, minute), SCHOOL_TZ)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time like 14:30 or 2026-03-02T14:30") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=SCHOOL_TZ)


def _grant_target(text: str) -> str:
    """A host category, or a host name; ValueError otherwise."""
    if text in HOST_CATEGORIES:
        return text
    try:
        domain = parse_domain(text, "command line", 1)
    except ListError as e:
        raise ValueError(f"{text!r}: {e.reason}") from None
    if not domain or "." not in domain:
        raise ValueError(f"{text!r} is neither a category ({', '.join(HOST_CATEGORIES)}) nor a host name")
    return domain


def _run(args: argparse.Namespace, action: Callable[[Store], Awaitable[int]], school: str | None = None,
         events_days: int = 28, audit_days: int = 365) -> int:
    """Run `action` on the store of `--school`, else $KLASWACHT_SCHOOL, else `school` (a policy's), else the
    default school."""

    async def main() -> int:
        chosen = args.school or gateway_school(school or DEFAULT_SCHOOL)
        store = Store(Path(args.data_dir), database_url=args.database, school=chosen, events_days=events_days,
                      audit_days=audit_days)
        await store.open(background=False)
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (StoreError, ValueError, OSError) as e:  # OSError: a data dir that cannot be made or read
        print(f"klaswacht: {e}", file=sys.stderr)
        return 1


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def cmd_events(args: argparse.Namespace) -> int:
    try:
        since = parse_local_time(args.since, datetime.now(SCHOOL_TZ)) if args.since else None
    except ValueError as e:
        print(f"klaswacht: {e}", file=sys.stderr)
        return 2

    async def action(store: Store) -> int:
        async for event in store.events(since=since, category=args.category, group=args.group,
                                        client=store.resolve_pupil(args.pupil) if args.pupil else None):
            sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
        return 0

    return _run(args, action)


def cmd_grant(args: argparse.Namespace) -> int:
    if args.minutes <= 0:
        print("klaswacht: --minutes must be more than 0", file=sys.stderr)
        return 2
    try:
        what = _grant_target(args.what)
    except ValueError as e:
        print(f"klaswacht: {e}", file=sys.stderr)
        return 2

    async def action(store: Store) -> int:
        until = datetime.now(SCHOOL_TZ) + timedelta(minutes=args.minutes)
        grant_id = await store.grant(args.actor, args.group, what, until)
        print(f"granted: {args.group} may use {what} until {until:%H:%M} (grant {grant_id})")
        return 0

    return _run(args, action)


def cmd_ban(args: argparse.Namespace) -> int:
    try:
        until = parse_local_time(args.until, datetime.now(SCHOOL_TZ))
    except ValueError as e:
        print(f"klaswacht: {e}", file=sys.stderr)
        return 2

    async def action(store: Store) -> int:
        ban_id = await store.ban(args.actor, args.pupil, until, args.reason)
        print(f"banned: {store.resolve_pupil(args.pupil)} until {until.astimezone(SCHOOL_TZ):%Y-%m-%d %H:%M} "
              f"(ban {ban_id})")
        return 0

    return _run(args, action)


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_users_add(args: argparse.Namespace) -> int:
    if args.board and args.school:
        print("klaswacht: --board and --school exclude each other: a board account has no school", file=sys.stderr)
        return 2
    try:
        password = _read_password()
    except ValueError as e:
        print(f"klaswacht: {e}", file=sys.stderr)
        return 1
    if not password:
        print("klaswacht: no password given", file=sys.stderr)
        return 1

    async def action(store: Store) -> int:
        if args.board:
            await store.scoped(None).add_user(args.actor, args.name, args.role, password, args.groups, board=True)
        else:
            await store.add_user(args.actor, args.name, args.role, password, args.groups)
        where = "the board" if args.board else f"school {store.school}"
        print(f"user added: {args.name} ({args.role}{', ' + ', '.join(args.groups) if args.groups else ''}; "
              f"{where})")
        return 0

    return _run(args, action)


def cmd_roster_import(args: argparse.Namespace) -> int:
    try:
        rows, errors = parse_roster(Path(args.file).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        print(f"klaswacht: {args.file}: {e}", file=sys.stderr)
        return 1
    for error in errors:
        print(f"{args.file}: {error}", file=sys.stderr)

    async def action(store: Store) -> int:
        count = await store.import_roster(args.actor, rows) if rows else 0
        print(f"roster: {count} pupils imported, {len(errors)} rows refused")
        return 1 if errors else 0

    return _run(args, action)


def cmd_export(args: argparse.Namespace) -> int:
    async def action(store: Store) -> int:
        _print_json(await store.export_pupil(args.actor, args.pupil))
        return 0

    return _run(args, action)


def cmd_forget(args: argparse.Namespace) -> int:
    async def action(store: Store) -> int:
        removed = await store.forget_pupil(args.actor, args.pupil)
        print("forgotten: " + ", ".join(f"{n} {table}" for table, n in removed.items()))
        return 0

    return _run(args, action)


def cmd_purge(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)

    async def action(store: Store) -> int:
        removed = await store.purge()
        print(f"purged (events older than {policy.events_days} days, audit older than {policy.audit_days} days): "
              + ", ".join(f"{n} {table}" for table, n in removed.items()))
        return 0

    return _run(args, action, school=policy.school_id, events_days=policy.events_days, audit_days=policy.audit_days)


def _login() -> str:
    try:
        return getpass.getuser()
    except OSError:  # no login name in some containers and services
        return "unknown"


def _store_options(parser: argparse.ArgumentParser, audited: bool = True) -> None:
    parser.add_argument("--data-dir", default=str(default_data_dir()), metavar="DIR",
                        help="where the database, spill files and secret are (default: %(default)s)")
    parser.add_argument("--database", default=default_database_url(), metavar="URL",
                        help=f"a postgresql:// URL to keep the data on that server instead of in the data dir "
                             f"(default: ${DATABASE_ENV}, else SQLite in the data dir)")
    parser.add_argument("--school", metavar="ID",
                        help=f"the school of a board this is for, its policy's [school] id (default: ${SCHOOL_ENV}, "
                             f"else {DEFAULT_SCHOOL!r})")
    if audited:
        parser.add_argument("--actor", default=f"cli:{_login()}",
                            help="who does this, for the audit log (default: %(default)s)")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the store's commands on the `klaswacht` parser."""
    p = sub.add_parser("events", help="print stored events as JSON lines, oldest first")
    p.add_argument("--since", metavar="TIME", help="only events from this local time on (ISO 8601 or HH:MM today)")
    p.add_argument("--category", help="only events of this category")
    p.add_argument("--group", help="only events of this group")
    p.add_argument("--pupil", metavar="ID", help="only events of this pupil (number or pseudonymous id)")
    _store_options(p, audited=False)
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("grant", help="open a category or host for a group for some minutes")
    p.add_argument("group")
    p.add_argument("what", metavar="CATEGORY_OR_HOST")
    p.add_argument("--minutes", type=int, required=True)
    _store_options(p)
    p.set_defaults(func=cmd_grant)

    p = sub.add_parser("ban", help="keep one pupil off the internet until a time")
    p.add_argument("pupil", metavar="PUPIL", help="pupil number or pseudonymous id")
    p.add_argument("--until", required=True, metavar="TIME", help="local time: HH:MM today or ISO 8601")
    p.add_argument("--reason", help="kept with the ban (not in the audit log)")
    _store_options(p)
    p.set_defaults(func=cmd_ban)

    users = sub.add_parser("users", help="staff accounts").add_subparsers(dest="users_command", required=True)
    p = users.add_parser("add", help="add a staff account; the password is read from a prompt or stdin")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--groups", nargs="*", default=[], metavar="GROUP", help="the groups a teacher sees")
    p.add_argument("--board", action="store_true",
                   help=f"an account of the board, over every school (role {' or '.join(BOARD_ROLES)}; not with "
                        "--school)")
    _store_options(p)
    p.set_defaults(func=cmd_users_add)

    roster = sub.add_parser("roster", help="pupils, groups and devices").add_subparsers(
        dest="roster_command", required=True)
    p = roster.add_parser("import", help="import a CSV export (ParnasSys, Magister): number, name, group")
    p.add_argument("file", metavar="FILE.csv")
    _store_options(p)
    p.set_defaults(func=cmd_roster_import)

    p = sub.add_parser("export", help="everything stored about one pupil, as JSON (right of access)")
    p.add_argument("--pupil", required=True, metavar="ID", help="pupil number or pseudonymous id")
    _store_options(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("purge", help="remove what is older than the policy's retention (the scheduled job)")
    p.add_argument("--policy", default=str(DEFAULT_POLICY), help="policy whose [privacy] retention applies")
    _store_options(p, audited=False)
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("forget", help="remove everything stored about one pupil")
    p.add_argument("--pupil", required=True, metavar="ID", help="pupil number or pseudonymous id")
    _store_options(p)
    p.set_defaults(func=cmd_forget)
