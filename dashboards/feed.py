"""The live list (`/`): today's blocks, alerts, reports and requests that a member of staff may see, the
forms that mark them seen, close them and answer requests, and `/live`, the server-sent events that put
new items on the page within two seconds.

Who sees what: a teacher everything of their own groups; care staff severe alerts of the whole school and
everything of their own groups, if they have any. Every change loads the item again and checks it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from dashboards.catalogue import translate
from dashboards.lessons import check_grant, grant_until_lesson_end, label, parse_host, school_clock
from dashboards.roles import HOME, can
from dashboards.timing import SchoolClock
from dashboards.web import (
    BadInput,
    action,
    csrf_token,
    current_staff,
    error_page,
    flash,
    language,
    local_path,
    page,
    render,
    store_of,
    templates,
)
from klaswacht.store import Store
from klaswacht.store.model import ANSWERS, Staff, StoreUnavailable, from_iso

log = logging.getLogger(__name__)

SEVERE = "severe"
OPEN_STATES = ("new", "seen")
ALL_STATES = ("new", "seen", "closed")
MAX_NOTE = 500
LIVE_WINDOW = timedelta(minutes=15)  # how far back /live looks for items it has not sent yet
PING_SECONDS = 15.0  # a comment line this often keeps proxies from closing an idle stream
STREAM_SECONDS = 600.0  # then the stream ends and the browser reconnects (EventSource does so by itself)


def may_handle(staff: Staff, item: dict[str, Any]) -> bool:
    """Whether `staff` may see and change `item`: their own group, or for care staff any severe item."""
    if not can(staff.role, "feed"):
        return False
    if item.get("group_name") in staff.groups:
        return True
    return staff.role == "care" and item.get("severity") == SEVERE


async def visible_items(store: Store, staff: Staff, since: datetime,
                        states: Iterable[str] = OPEN_STATES) -> list[dict[str, Any]]:
    """The items `staff` sees since `since`: severe ones first, then newest first."""
    states = tuple(states)
    groups = sorted(staff.groups)
    found = await store.feed(since=since, groups=groups, states=states)
    if staff.role == "care":
        found += await store.feed(since=since, severities=(SEVERE,), states=states)
    unique = {item["id"]: item for item in found if may_handle(staff, item)}
    newest_first = sorted(unique.values(), key=lambda i: (i["time"], i["id"]), reverse=True)
    return sorted(newest_first, key=lambda i: i["severity"] != SEVERE)


def _view(item: dict[str, Any], staff: Staff, clock: SchoolClock, lang: str) -> dict[str, Any]:
    """What the item partial shows, with every label in the reader's language."""
    pupil = item.get("pupil_name") or translate("common.device", lang, id=item.get("client") or "?")
    when = clock.hhmm(from_iso(item["time"]))
    severe = item["severity"] == SEVERE
    rule = label("feed.rule", item["rule"], lang)
    category = label("feed.category", item["category"], lang)
    what = f"{rule} ({category})" if category else rule
    changed = from_iso(item["changed_at"]) if item.get("changed_at") else None
    terms = [str(term) for term in item.get("terms") or []]
    # A pupil's report keeps the rule of the block page it was sent from, not words they sought.
    about = label("feed.rule", terms[0], lang) if item["action"] == "report" and terms else ""
    return {
        "id": item["id"], "time": item["time"], "hhmm": when, "pupil": pupil, "group": item.get("group_name") or "",
        "severe": severe, "action": label("feed.action", item["action"], lang), "rule": rule, "category": category,
        "terms": [] if about else terms, "about": about, "host": item.get("host") or "", "state": item["state"],
        "state_label": label("feed.state", item["state"], lang), "note": item.get("note") or "",
        "answer": label("feed.answer", item.get("answer"), lang),
        "changed": translate("feed.changed", lang, state=label("feed.state", item["state"], lang),
                             name=item["changed_by"], time=clock.hhmm(changed))
        if changed and item.get("changed_by") else "",
        "request": item["action"] == "request" and item["state"] != "closed",
        # A request the block page could not confirm (no category) has nothing to open: it can only be refused.
        "may_grant": can(staff.role, "grant") and bool(item.get("category")),
        "announce": translate("feed.announce.severe" if severe else "feed.announce", lang, pupil=pupil, what=what,
                              time=when),
    }


def _fragment(request: Request, view: dict[str, Any], back: str) -> str:
    """One item as the list shows it: the same partial as the page, rendered (and escaped) by Jinja."""
    lang = language(request)

    def t(key: str, **values: object) -> str:
        return translate(key, lang, **values)

    return templates.get_template("feed_item.html").render(item=view, t=t, csrf=csrf_token(request), back=back)


@page(None)
async def feed_page(request: Request, staff: Staff) -> Response:
    if not can(staff.role, "feed"):  # IT and admin have a home of their own, and no business with names
        return RedirectResponse(HOME[staff.role], status_code=303)
    show_closed = request.query_params.get("closed") == "1"
    clock = school_clock(request)
    lang = language(request)
    items = await visible_items(store_of(request), staff, clock.midnight(), ALL_STATES if show_closed else OPEN_STATES)
    return render(request, "feed.html", staff, items=[_view(item, staff, clock, lang) for item in items],
                  back="/?closed=1" if show_closed else "/", show_closed=show_closed,
                  groups=", ".join(sorted(staff.groups)))


def _sse(event: str, ident: str, data: str) -> str:
    """One server-sent event; every line of `data` on a `data:` line of its own."""
    lines = "".join(f"data: {line}\n" for line in data.strip().splitlines())
    return f"event: {event}\nid: {ident}\n{lines}\n"


async def _live_events(request: Request, staff: Staff) -> AsyncIterator[str]:
    """New items of the staff member's scope as they arrive, until the client goes or the stream's time is up.

    Each pass reads the last LIVE_WINDOW and sends what it has not sent; the page skips what it shows already.
    Cancellation (uvicorn stopping, the client gone) ends it at its next pause: nothing here holds it up.
    """
    config = request.app.state.config
    store = store_of(request)
    loop = asyncio.get_running_loop()
    started = last_ping = loop.time()
    sent: set[str] = set()
    failing = False
    yield "retry: 2000\n\n"
    while loop.time() - started < STREAM_SECONDS:
        if await request.is_disconnected():
            return
        clock = school_clock(request)
        try:
            items = await visible_items(store, staff, clock.real_now - LIVE_WINDOW)
        except StoreUnavailable as e:
            if not failing:
                log.warning("dashboard: live list waits for the store: %s", e)
            failing, items = True, []
        else:
            failing = False
        lang = language(request)
        for item in sorted(items, key=lambda i: (i["time"], i["id"])):  # oldest first: the newest ends on top
            if item["id"] not in sent:
                yield _sse("item", item["id"], _fragment(request, _view(item, staff, clock, lang), "/"))
        if items or not failing:
            sent = {item["id"] for item in items}  # what left the window never comes back into it
        if loop.time() - last_ping >= PING_SECONDS:
            last_ping = loop.time()
            now = await current_staff(request)  # signed out, disabled or moved to another role: stop
            if now is None or now.role != staff.role or now.groups != staff.groups:
                return
            yield ": ping\n\n"
        await asyncio.sleep(config.live_interval)


async def live(request: Request) -> Response:
    """`/live`: text/event-stream of new items for the same scope as `/`."""
    try:
        staff = await current_staff(request)
    except StoreUnavailable:
        return Response(status_code=503)
    if staff is None:
        return Response(status_code=401)
    if not can(staff.role, "feed"):
        return Response(status_code=403)
    return StreamingResponse(_live_events(request, staff), media_type="text/event-stream",
                             headers={"X-Accel-Buffering": "no"})


async def _item_for(request: Request, staff: Staff) -> dict[str, Any] | Response:
    """The item of the path, if `staff` may change it; else the page to answer with (404 or 403)."""
    item = await store_of(request).feed_item(request.path_params["item_id"])
    if item is None:
        return error_page(request, staff, 404, "error.not_found")
    if not may_handle(staff, item):
        return error_page(request, staff, 403, "error.forbidden")
    return item


def _back(form: FormData) -> Response:
    return RedirectResponse(local_path(form.get("back"), "/"), status_code=303)


@action("feed")
async def set_state(request: Request, staff: Staff, form: FormData) -> Response:
    item = await _item_for(request, staff)
    if isinstance(item, Response):
        return item
    state = form.get("state")
    if state not in ("seen", "closed"):
        raise BadInput("feed.error.state")
    note = form.get("note", "")
    note = note.strip() if isinstance(note, str) else ""
    if len(note) > MAX_NOTE:
        raise BadInput("feed.error.note")
    await store_of(request).set_alert(staff.name, item["id"], state, note=note or None)
    flash(request, f"feed.flash.{state}")
    return _back(form)


def _request_grant(item: dict[str, Any]) -> str:
    """What a request asks to open: for a closed host category the list entry's domain when it names one,
    else the category (of the host, or of the search words)."""
    terms = item.get("terms") or []
    if item["rule"] == "closed-category" and terms and "." in str(terms[0]):
        return parse_host(str(terms[0]))
    if not item.get("category"):
        raise BadInput("lessons.error.category")
    return str(item["category"])


@action("feed")
async def answer(request: Request, staff: Staff, form: FormData) -> Response:
    item = await _item_for(request, staff)
    if isinstance(item, Response):
        return item
    if item["action"] != "request":
        raise BadInput("feed.error.not_request")
    given = form.get("answer")
    if given not in ANSWERS:
        raise BadInput("feed.error.answer")
    if given == "granted" and not can(staff.role, "grant"):
        return error_page(request, staff, 403, "error.forbidden")
    if item["state"] == "closed":
        flash(request, "feed.flash.answered")
        return _back(form)
    if given == "granted":
        group = item.get("group_name")
        if not group:
            raise BadInput("feed.error.no_group")
        what = _request_grant(item)
        check_grant(what, request.app.state.policy, request.app.state.lists, language(request))
        await grant_until_lesson_end(request, staff, group, what)  # flashes what was opened, until when
    else:
        flash(request, "feed.flash.refused")
    await store_of(request).set_alert(staff.name, item["id"], "closed", answer=str(given))
    return _back(form)


routes: list[BaseRoute] = [
    Route("/", feed_page, methods=["GET"]),
    Route("/live", live, methods=["GET"]),
    Route("/alerts/{item_id}", set_state, methods=["POST"]),
    Route("/alerts/{item_id}/answer", answer, methods=["POST"]),
]
