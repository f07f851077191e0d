"""The page "This lesson" (`/lesson`): the period of each of the teacher's groups, grants with a countdown,
and temporary bans of pupils; with the forms that make and lift them.

A teacher grants only for their own groups and bans or lifts only for pupils of their groups; care staff
ban and lift for the whole school and grant nothing. Every check is made again on every POST.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dashboards.catalogue import translate
from dashboards.roles import can, whole_school
from dashboards.timing import SchoolClock
from dashboards.web import BadInput, action, error_page, flash, language, lists_of, page, policy_of, render, store_of
from filters.hosts import ALLOW, clean_host
from filters.policy import Policy
from klaswacht.loading import Lists
from klaswacht.store.database import Row
from klaswacht.store.model import Staff, from_iso

MAX_MINUTES = 240
MAX_REASON = 200
_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z][a-z0-9-]{0,62}")
_CLOCK = re.compile(r"([01]?\d|2[0-3])[:.]([0-5]\d)")


def label(prefix: str, value: str | None, lang: str) -> str:
    """The catalogue's name for `value` (`prefix.value`), or `value` itself when the catalogue has none."""
    if not value:
        return ""
    key = f"{prefix}.{value}"
    text = translate(key, lang)
    return value if text == key else text


def what_label(what: str, policy: Policy, lang: str) -> str:
    """How a grant's `what` reads: a category's name ("social media", "search words: sex"), or the host."""
    if "." in what:
        return what
    name = label("category", what, lang)
    if what in policy.search_categories:
        name = translate("lessons.words", lang, category=name)
    return name[:1].upper() + name[1:]


def grant_categories(policy: Policy) -> list[str]:
    """What a teacher may open by name: host categories closed in lessons, then search-word categories,
    never one that the policy keeps closed."""
    hosts = sorted(policy.periods["lesson"].closed - policy.never_open) if "lesson" in policy.periods else []
    return hosts + sorted(policy.search_categories - policy.never_open - set(hosts))


def parse_host(text: str) -> str:
    """The host name in what a teacher typed (a host, or a URL pasted from the address bar); BadInput if none."""
    text = text.strip()
    pasted = "/" in text  # a URL: its host, whatever the path says
    try:
        host = (urlsplit(text if "//" in text else "//" + text).hostname or "") if pasted else clean_host(text)
    except ValueError:  # "http://[::1/": not a URL urllib can read
        host = ""
    host = host.removeprefix("*.")
    if not _HOSTNAME.fullmatch(host):
        raise BadInput("lessons.error.host", host=text[:100])
    return host


def check_grant(what: str, policy: Policy, lists: Lists, lang: str) -> None:
    """BadInput unless a grant of `what` (a category or a host) can open anything for a teacher."""
    if "." not in what:
        if what in policy.never_open:
            raise BadInput("lessons.error.never_open", what=what_label(what, policy, lang))
        if what not in _closed_anywhere(policy) | policy.search_categories:
            raise BadInput("lessons.error.category")
        return
    entry = lists.hosts.lookup(what)
    if entry is None or entry.category == ALLOW:
        raise BadInput("lessons.error.host_open", host=what)
    if entry.category in policy.never_open:
        raise BadInput("lessons.error.never_open", what=what)


def _closed_anywhere(policy: Policy) -> frozenset[str]:
    return frozenset().union(*(rule.closed for rule in policy.periods.values())) - policy.never_open


def school_clock(request: Request) -> SchoolClock:
    return SchoolClock.of(policy_of(request), request.app.state.config)


async def _grant(request: Request, staff: Staff, clock: SchoolClock, group: str, what: str, until: datetime,
                 fell_back: bool) -> None:
    await store_of(request).grant(staff.name, group, what, until)
    flash_granted(request, clock, group, what, until, fell_back)


def flash_granted(request: Request, clock: SchoolClock, group: str, what: str, until: datetime,
                  fell_back: bool) -> None:
    """Say what was opened for which group, until when (and that it is 45 minutes when there was no lesson)."""
    flash(request, "lessons.flash.granted_fallback" if fell_back else "lessons.flash.granted",
          what=what_label(what, policy_of(request), language(request)), group=group, until=clock.hhmm(until))


async def _visible_pupils(request: Request, staff: Staff) -> dict[str, Row]:
    """The pupils whose bans `staff` sees and changes: their groups' pupils, or every pupil for care."""
    rows = await store_of(request).pupils(None if whole_school(staff.role) else sorted(staff.groups))
    return {row["id"]: row for row in rows}


@page(None)
async def lesson_page(request: Request, staff: Staff) -> Response:
    if not (can(staff.role, "grant") or can(staff.role, "ban")):
        return error_page(request, staff, 403, "error.forbidden")
    store = store_of(request)
    policy = policy_of(request)
    clock = school_clock(request)
    lang = language(request)
    granting = can(staff.role, "grant")
    groups: list[dict[str, Any]] = []
    grants: list[dict[str, Any]] = []
    if granting:
        for name in sorted(staff.groups):
            period = clock.period(name)
            end = clock.period_end(name)
            groups.append({"name": name, "period": period, "end": clock.hhmm(end) if end else None,
                           "fallback": period != "lesson"})
        for row in await store.active("grant", clock.real_now):
            if row["group_name"] in staff.groups:
                until = from_iso(row["until"])
                grants.append({"id": row["id"], "group": row["group_name"], "what": row["what"], "actor": row["actor"],
                               "label": what_label(row["what"], policy, lang), "until": row["until"],
                               "end": clock.hhmm(until)})
    pupils = await _visible_pupils(request, staff)
    bans = []
    for row in await store.active("ban", clock.real_now):
        pupil = pupils.get(row["pupil"])
        if pupil is not None:
            bans.append({"id": row["id"], "pupil": pupil["name"], "group": pupil["group_name"] or "",
                         "until": row["until"], "end": clock.hhmm(from_iso(row["until"])),
                         "reason": row["reason"] or ""})
    categories = [(c, what_label(c, policy, lang)) for c in grant_categories(policy)]
    by_group: dict[str, list[Row]] = {}
    for pupil in sorted(pupils.values(), key=lambda p: (p["group_name"] or "", p["name"])):
        by_group.setdefault(pupil["group_name"] or "", []).append(pupil)
    return render(request, "lesson.html", staff, groups=groups, grants=grants, bans=bans, categories=categories,
                  pupils=list(by_group.items()), granting=granting, max_minutes=MAX_MINUTES, max_reason=MAX_REASON)


def _text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _minutes(text: str) -> int:
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not re.fullmatch(r"[0-9]{1,4}", text) or not 1 <= int(text) <= MAX_MINUTES:
        raise BadInput("lessons.error.minutes")
    return int(text)


def _back() -> Response:
    return RedirectResponse("/lesson", status_code=303)


@action("grant")
async def make_grant(request: Request, staff: Staff, form: FormData) -> Response:
    group = _text(form, "group")
    if group not in staff.groups:
        return error_page(request, staff, 403, "error.forbidden")
    category, host = _text(form, "category"), _text(form, "host")
    if bool(category) == bool(host):
        raise BadInput("lessons.error.what")
    policy = policy_of(request)
    if category and category not in grant_categories(policy):
        raise BadInput("lessons.error.category")
    what = category or parse_host(host)
    check_grant(what, policy, lists_of(request), language(request))
    clock = school_clock(request)
    if _text(form, "duration") == "minutes":
        until, fell_back = clock.real_now + timedelta(minutes=_minutes(_text(form, "minutes"))), False
    else:
        until, fell_back = clock.until_lesson_end(group)
    await _grant(request, staff, clock, group, what, until, fell_back)
    return _back()


@action("grant")
async def lift_grant(request: Request, staff: Staff, form: FormData) -> Response:
    grant_id = request.path_params["grant_id"]
    row = next((r for r in await store_of(request).active("grant") if r["id"] == grant_id), None)
    if row is None:
        flash(request, "lessons.flash.ended")
        return _back()
    if row["group_name"] not in staff.groups:
        return error_page(request, staff, 403, "error.forbidden")
    if await store_of(request).lift(staff.name, "grant", grant_id):
        flash(request, "lessons.flash.lifted_grant", group=row["group_name"],
              what=what_label(row["what"], policy_of(request), language(request)))
    else:
        flash(request, "lessons.flash.ended")
    return _back()


def _ban_until(form: FormData, clock: SchoolClock) -> datetime:
    minutes, until = _text(form, "minutes"), _text(form, "until")
    if bool(minutes) == bool(until):
        raise BadInput("lessons.error.until")
    if minutes:
        return clock.real_now + timedelta(minutes=_minutes(minutes))
    found = _CLOCK.fullmatch(until)
    if not found:
        raise BadInput("lessons.error.time")
    end = clock.at_today(time(int(found.group(1)), int(found.group(2))))
    if end <= clock.real_now:
        raise BadInput("lessons.error.past", time=until)
    return end


@action("ban")
async def make_ban(request: Request, staff: Staff, form: FormData) -> Response:
    pupil_id = _text(form, "pupil")
    if pupil_id not in await _visible_pupils(request, staff):
        if whole_school(staff.role):
            raise BadInput("lessons.error.pupil")
        return error_page(request, staff, 403, "error.forbidden")
    clock = school_clock(request)
    until = _ban_until(form, clock)
    reason = _text(form, "reason")
    if not reason or len(reason) > MAX_REASON:
        raise BadInput("lessons.error.reason")
    await store_of(request).ban(staff.name, pupil_id, until, reason)
    # No name in the flash: it travels in the session cookie.
    flash(request, "lessons.flash.banned", until=clock.hhmm(until))
    return _back()


@action("ban")
async def lift_ban(request: Request, staff: Staff, form: FormData) -> Response:
    ban_id = request.path_params["ban_id"]
    row = next((r for r in await store_of(request).active("ban") if r["id"] == ban_id), None)
    if row is None:
        flash(request, "lessons.flash.ended")
        return _back()
    if row["pupil"] not in await _visible_pupils(request, staff):
        return error_page(request, staff, 403, "error.forbidden")
    lifted = await store_of(request).lift(staff.name, "ban", ban_id)
    flash(request, "lessons.flash.lifted_ban" if lifted else "lessons.flash.ended")
    return _back()


routes: list[BaseRoute] = [
    Route("/lesson", lesson_page, methods=["GET"]),
    Route("/grants", make_grant, methods=["POST"]),
    Route("/grants/{grant_id}/lift", lift_grant, methods=["POST"]),
    Route("/bans", make_ban, methods=["POST"]),
    Route("/bans/{ban_id}/lift", lift_ban, methods=["POST"]),
]
