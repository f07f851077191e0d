"""The live list (`/`): today's blocks, alerts, reports and requests that a member of staff may see, the
forms that mark them seen, close them and answer requests, and `/live`, the server-sent events that put
new items on the page within two seconds.

Who sees what: a teacher everything of their own groups; care staff severe alerts of the whole school and
everything of their own groups, if they have any. Every change loads the item again and checks it.

Repeats collapse into one card: a blocked page that the browser fetches again (retries, /favicon.ico) is one
thing that happened, not eight. Items with the same pupil, group, action, rule, category, host, terms, state
and note are one card that shows the newest time and "3× sinds 09:02"; its forms carry the ids of all of them.
Severe items, reports and requests are never collapsed: each is its own card.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from dashboards.catalogue import translate
from dashboards.lessons import check_grant, flash_granted, label, parse_host, school_clock
from dashboards.roles import HOME, can
from dashboards.timing import FALLBACK, SchoolClock
from dashboards.web import (
    BadInput,
    action,
    csrf_token,
    current_staff,
    error_page,
    flash,
    language,
    lists_of,
    local_path,
    page,
    policy_of,
    render,
    store_of,
    templates,
)
from filters.policy import Policy
from klaswacht.loading import Lists
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
SINGLE_ACTIONS = ("report", "request")  # a pupil's deliberate act: never collapsed with another
MAX_IDS = 200  # the ids one card's forms carry (the newest of its repeats), and one POST may change
MAX_CARDS = 200  # cards on the page
FEED_LIMIT = 2000  # items read for the list: more than its cards, since repeats collapse

Card = list[dict[str, Any]]  # one card of the list: an item and its repeats, newest first


def may_handle(staff: Staff, item: dict[str, Any]) -> bool:
    """Whether `staff` may see and change `item`: their own group, or for care staff any severe item."""
    if not can(staff.role, "feed"):
        return False
    if item.get("group_name") in staff.groups:
        return True
    return staff.role == "care" and item.get("severity") == SEVERE


async def visible_items(store: Store, staff: Staff, since: datetime,
                        states: Iterable[str] = OPEN_STATES) -> list[dict[str, Any]]:
    """The items `staff` sees since `since`: severe ones first, then newest first.

    Severe items are read by a query of their own (of the staff member's groups, and for care of the whole
    school), apart from the rest: a flood of blocks, reports or requests (FEED_LIMIT of them) cannot push an
    older severe item out of the list. Each query reads at most FEED_LIMIT items.
    """
    states = tuple(states)
    groups = sorted(staff.groups)
    found = await store.feed(since=since, groups=groups, states=states, limit=FEED_LIMIT)
    found += await store.feed(since=since, groups=None if staff.role == "care" else groups, severities=(SEVERE,),
                              states=states, limit=FEED_LIMIT)
    unique = {item["id"]: item for item in found if may_handle(staff, item)}
    newest_first = sorted(unique.values(), key=lambda i: (i["time"], i["id"]), reverse=True)
    return sorted(newest_first, key=lambda i: i["severity"] != SEVERE)


def collapse_key(item: dict[str, Any]) -> tuple[Any, ...] | None:
    """What makes items repeats of one another; None for an item that is always a card of its own (severe, a
    report, a request). The note is part of it: repeats closed at different times with different notes stay
    apart under "show closed"."""
    if item["severity"] == SEVERE or item["action"] in SINGLE_ACTIONS:
        return None
    return (item.get("client"), item.get("group_name"), item["action"], item["rule"], item.get("category"),
            item.get("host"), tuple(str(term) for term in item.get("terms") or []), item["severity"],
            item["state"], item.get("note"))


def key_hash(key: tuple[Any, ...]) -> str:
    """A short stable name of a collapse key for the page (data-key), by which feed.js finds the card again."""
    return hashlib.sha256(json.dumps(key, ensure_ascii=False).encode()).hexdigest()[:16]


def collapse(items: Iterable[dict[str, Any]]) -> list[Card]:
    """`items` (in the list's order) as cards, in the order of each card's first item: repeats together."""
    cards: list[Card] = []
    open_cards: dict[tuple[Any, ...], Card] = {}
    for item in items:
        key = collapse_key(item)
        if key is None:
            cards.append([item])
        elif key in open_cards:
            open_cards[key].append(item)
        else:
            open_cards[key] = [item]
            cards.append(open_cards[key])
    return cards


def bounded(cards: list[Card]) -> list[Card]:
    """The cards the page shows: every severe card (their query has its own bound), then the others up to
    MAX_CARDS in all."""
    severe = [card for card in cards if card[0]["severity"] == SEVERE]
    return severe + [card for card in cards if card[0]["severity"] != SEVERE][:max(MAX_CARDS - len(severe), 0)]


def _opens(item: dict[str, Any], staff: Staff, clock: SchoolClock, policy: Policy, lists: Lists,
           lang: str) -> str:
    """What "Toestaan voor deze les" would open for a request, in words ("Toestaan opent: sociale media voor
    groep 7-8 tot het einde van de les"): worked out as `answer` does, from the list entry or category the
    block page confirmed, never from the host the pupil's form named. "" when nothing can be granted (the
    button is not shown)."""
    group = item.get("group_name")
    if item["action"] != "request" or item["state"] == "closed" or not group or not can(staff.role, "grant"):
        return ""
    try:
        what = _request_grant(item)
        check_grant(what, policy, lists, lang)
    except BadInput:
        return ""
    if "." in what:
        text = translate("feed.opens.host", lang, host=what)
    elif what in policy.search_categories:
        text = translate("feed.opens.words", lang, category=label("category", what, lang))
    else:
        text = translate("feed.opens.category", lang, category=label("category", what, lang))
    until = translate("feed.opens.lesson", lang) if clock.lesson_end(group) is not None else translate(
        "feed.opens.fallback", lang, minutes=int(FALLBACK.total_seconds() // 60), group=group)
    return translate("feed.opens", lang, what=text, group=group, until=until)


def _view(card: Card, staff: Staff, clock: SchoolClock, lang: str, policy: Policy, lists: Lists) -> dict[str, Any]:
    """What the item partial shows of a card (its newest item, and how often since when), with every label in
    the reader's language."""
    item = card[0]
    opens = _opens(item, staff, clock, policy, lists, lang)
    pupil = item.get("pupil_name") or translate("common.device", lang, id=item.get("client") or "?")
    when = clock.hhmm(from_iso(item["time"]))
    severe = item["severity"] == SEVERE
    rule = label("feed.rule", item["rule"], lang)
    category = label("category", item["category"], lang)
    what = f"{rule} ({category})" if category else rule
    changed = from_iso(item["changed_at"]) if item.get("changed_at") else None
    terms = [str(term) for term in item.get("terms") or []]
    # A pupil's report keeps the rule of the block page it was sent from, not words they sought.
    about = label("feed.rule", terms[0], lang) if item["action"] == "report" and terms else ""
    view = {
        "id": item["id"], "time": item["time"], "hhmm": when, "pupil": pupil, "group": item.get("group_name") or "",
        "severe": severe, "action": label("feed.action", item["action"], lang), "rule": rule, "category": category,
        "terms": [] if about else terms, "about": about, "host": item.get("host") or "", "state": item["state"],
        "state_label": label("feed.state", item["state"], lang), "note": item.get("note") or "",
        "answer": label("feed.answer", item.get("answer"), lang),
        "changed": translate("feed.changed", lang, state=label("feed.state", item["state"], lang),
                             name=item["changed_by"], time=clock.hhmm(changed))
        if changed and item.get("changed_by") else "",
        "request": item["action"] == "request" and item["state"] != "closed",
        # A request the block page could not confirm (no category), or whose grant would be refused, has nothing
        # to open: it can only be refused. Otherwise the card says what the grant opens, for whom, until when.
        "may_grant": bool(opens), "opens": opens,
        # The host of a report or request is what the pupil's page sent (a form can be forged): said so.
        "host_by_page": item["action"] in SINGLE_ACTIONS,
    }
    key = collapse_key(item)
    repeats = translate("feed.repeats", lang, count=len(card), time=clock.hhmm(from_iso(card[-1]["time"]))) \
        if len(card) > 1 else ""
    return view | {
        "key": key_hash(key) if key else "", "count": len(card), "repeats": repeats,
        # The forms act on every repeat shown (the newest MAX_IDS; the path names the newest).
        "ids": " ".join(str(i["id"]) for i in card[1:MAX_IDS]),
        "announce": translate("feed.announce.severe" if severe else "feed.announce.repeat" if repeats
                              else "feed.announce", lang, pupil=pupil, what=what, time=when, repeats=repeats),
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
    cards = bounded(collapse(items))
    policy, lists = policy_of(request), lists_of(request)
    return render(request, "feed.html", staff, items=[_view(card, staff, clock, lang, policy, lists) for card in cards],
                  back="/?closed=1" if show_closed else "/", show_closed=show_closed,
                  groups=", ".join(sorted(staff.groups)))


def _sse(event: str, ident: str, data: str) -> str:
    """One server-sent event; every line of `data` on a `data:` line of its own."""
    lines = "".join(f"data: {line}\n" for line in data.strip().splitlines())
    return f"event: {event}\nid: {ident}\n{lines}\n"


async def _live_cards(store: Store, staff: Staff, clock: SchoolClock, fresh: list[dict[str, Any]]) -> list[Card]:
    """The cards that `fresh` items make or change, oldest first (so the newest ends on top of the page).

    An item that repeats another comes as the whole card of its key, read again over today's items: the page
    replaces the card it shows with that key. One card per key, however many repeats came in this pass.
    """
    cards = [[item] for item in fresh if collapse_key(item) is None]
    keys = {key for key in map(collapse_key, fresh) if key is not None}
    if keys:
        today = {collapse_key(card[0]): card for card in collapse(await visible_items(store, staff, clock.midnight()))}
        cards += [today[key] for key in keys if key in today]
        # Items of the window from before midnight, or beyond today's FEED_LIMIT: cards of what came now.
        cards += collapse(item for item in fresh if collapse_key(item) in keys - today.keys())
    return sorted(cards, key=lambda card: (card[0]["time"], card[0]["id"]))


async def _live_events(request: Request, staff: Staff) -> AsyncIterator[str]:
    """New items of the staff member's scope as they arrive, until the client goes or the stream's time is up.

    Each pass reads the last LIVE_WINDOW and sends the cards of what it has not sent; the page skips a card it
    shows already as it is, and replaces the card of the same key. The server stopping ends it at once
    (`app.state.stopping`); cancellation (the client gone) at its next pause: nothing here holds it up.
    """
    config = request.app.state.config
    stopping: asyncio.Event = request.app.state.stopping
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
            fresh = [item for item in items if item["id"] not in sent]
            cards = await _live_cards(store, staff, clock, fresh) if fresh else []
        except StoreUnavailable as e:
            if not failing:
                log.warning("dashboard: live list waits for the store: %s", e)
            failing, items, cards = True, [], []
        else:
            failing = False
        lang = language(request)
        policy, lists = policy_of(request), lists_of(request)
        for card in cards:
            yield _sse("item", card[0]["id"], _fragment(request, _view(card, staff, clock, lang, policy, lists), "/"))
        if items or not failing:
            sent = {item["id"] for item in items}  # what left the window never comes back into it
        if loop.time() - last_ping >= PING_SECONDS:
            last_ping = loop.time()
            now = await current_staff(request)  # signed out, disabled or moved to another role: stop
            if now is None or now.role != staff.role or now.groups != staff.groups:
                return
            yield ": ping\n\n"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), config.live_interval)
        if stopping.is_set():
            return  # the server stops: the stream ends whole, and the page reconnects to the next one


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
    items = await _items_for(request, staff, [request.path_params["item_id"]])
    return items if isinstance(items, Response) else items[0]


async def _items_for(request: Request, staff: Staff, ids: list[str]) -> list[dict[str, Any]] | Response:
    """The items `ids`, if `staff` may change every one of them; else the page to answer with (404 or 403)."""
    store = store_of(request)
    items = []
    for item_id in ids:
        item = await store.feed_item(item_id)
        if item is None:
            return error_page(request, staff, 404, "error.not_found")
        if not may_handle(staff, item):
            return error_page(request, staff, 403, "error.forbidden")
        items.append(item)
    return items


def _card_ids(request: Request, form: FormData) -> list[str]:
    """The item of the path and the other items of its card (`ids`: space-separated, as the card's forms send
    them; one field, since a form has at most 100), each once; at most MAX_IDS."""
    others = form.get("ids", "")
    ids = [request.path_params["item_id"], *(others.split() if isinstance(others, str) else [])]
    ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_IDS:
        raise BadInput("feed.error.too_many", limit=MAX_IDS)
    return ids


def _back(form: FormData) -> Response:
    return RedirectResponse(local_path(form.get("back"), "/"), status_code=303)


@action("feed")
async def set_state(request: Request, staff: Staff, form: FormData) -> Response:
    """Mark a card seen or close it: the item of the path and its repeats (`ids`). Every one is checked first;
    one refused and nothing changes."""
    items = await _items_for(request, staff, _card_ids(request, form))
    if isinstance(items, Response):
        return items
    state = form.get("state")
    if state not in ("seen", "closed"):
        raise BadInput("feed.error.state")
    note = form.get("note", "")
    note = note.strip() if isinstance(note, str) else ""
    if len(note) > MAX_NOTE:
        raise BadInput("feed.error.note")
    store = store_of(request)
    for item in items:
        await store.set_alert(staff.name, item["id"], state, note=note or None)
    if len(items) > 1:
        flash(request, f"feed.flash.{state}.many", count=len(items))
    else:
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
    grant: tuple[str, str, datetime] | None = None
    if given == "granted":
        group = item.get("group_name")
        if not group:
            raise BadInput("feed.error.no_group")
        what = _request_grant(item)
        check_grant(what, request.app.state.policy, request.app.state.lists, language(request))
        clock = school_clock(request)
        until, fell_back = clock.until_lesson_end(group)
        grant = (group, what, until)
    # One transaction: the grant is made only by the answer that closes the request (two teachers at once).
    if not await store_of(request).answer_request(staff.name, item["id"], str(given), grant):
        flash(request, "feed.flash.answered")
    elif grant is not None:
        flash_granted(request, clock, *grant, fell_back)
    else:
        flash(request, "feed.flash.refused")
    return _back(form)


routes: list[BaseRoute] = [
    Route("/", feed_page, methods=["GET"]),
    Route("/live", live, methods=["GET"]),
    Route("/alerts/{item_id}", set_state, methods=["POST"]),
    Route("/alerts/{item_id}/answer", answer, methods=["POST"]),
]
