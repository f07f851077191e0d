"""The live list (`/`), its actions and requests, and `/live`, through the real app over a real SQLite store."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx2
import pytest
import uvicorn
from dashboard_helpers import (
    LESSON_CLOCK,
    PASSWORD,
    active,
    app_client,
    csrf_of,
    open_school,
    record,
    sign_in,
    stored_state,
    with_store,
)
from playwright.sync_api import expect, sync_playwright
from starlette.testclient import TestClient

import dashboards.feed
from dashboards.app import create_app
from dashboards.catalogue import MESSAGES
from dashboards.config import DashboardConfig
from dashboards.serve import DashboardServer
from filters.decide import RULES
from filters.hosts import HOST_CATEGORIES
from filters.terms import CATEGORIES
from klaswacht.store import Event, Store
from klaswacht.store.model import ALERT_STATES, ANSWERS, FEED_ACTIONS, QUIET_RULES

TEMPLATES = Path(__file__).resolve().parents[2] / "dashboards" / "templates"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@dataclass
class School:
    data_dir: Path
    pupils: dict[str, str]  # pupil number -> pseudonymous id
    items: dict[str, str]  # first term of each event -> its id


def _base_time() -> datetime:
    """Half a minute ago, but never before today's local midnight (the list shows today only)."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.astimezone(AMSTERDAM).date(), datetime.min.time(), AMSTERDAM)
    return max(now - timedelta(seconds=30), midnight.astimezone(UTC))


@pytest.fixture
def school(tmp_path: Path, template: Path) -> School:
    pupils = open_school(tmp_path, template)
    anna, bram, chris = pupils["1001"], pupils["1002"], pupils["1003"]
    base = _base_time()
    events = [
        Event("alert", "threat", "threat", "web.whatsapp.com", ("ik maak je af",), bram, "groep 5-6", "severe"),
        Event("block", "closed-category", "chat", "discord.com", ("discord.com",), bram, "groep 5-6"),
        Event("block", "search-words", "sex", "www.google.com", ("seks",), anna, "groep 7-8"),
        Event("request", "closed-category", "social", "www.tiktok.com", ("tiktok.com",), anna, "groep 7-8"),
        Event("request", "search-words", "violence", "www.google.com", ("mes",), chris, "groep 7-8"),
        Event("block", "closed-category", "social", "www.instagram.com", ("instagram.com",), "d-00aa11bb22cc33dd",
              "groep 7-8"),
    ]
    record(tmp_path, *(Event(e.action, e.rule, e.category, e.host, e.terms, e.client, e.group, e.severity,
                             time=base + timedelta(seconds=n)) for n, e in enumerate(events)))
    return School(tmp_path, pupils, {item["terms"][0]: item["id"] for item in _items(tmp_path)})


@pytest.fixture
def client(school: School) -> Iterator[TestClient]:
    with app_client(school.data_dir, fake_clock=LESSON_CLOCK, live_interval=0.05) as c:
        yield c


def _items(data_dir: Path) -> list[dict[str, object]]:
    async def work(store: Store) -> list[dict[str, object]]:
        return await store.feed(since=datetime(2000, 1, 1, tzinfo=UTC), states=ALERT_STATES, limit=1000)

    return with_store(data_dir, work)


def _item(data_dir: Path, item_id: str) -> dict[str, object]:
    return next(i for i in _items(data_dir) if i["id"] == item_id)


def _listed_ids(html: str) -> list[str]:
    return re.findall(r'<li class="card item[^"]*"[^>]*data-id="([^"]+)"', html)


def test_teacher_sees_the_items_of_their_own_groups_and_nothing_of_other_groups(school: School,
                                                                               client: TestClient) -> None:
    """A teacher's list holds their group's blocks and requests; the other group's pupils are not named."""
    sign_in(client, "juf")
    html = client.get("/").text
    assert set(_listed_ids(html)) == {school.items[t] for t in ("seks", "tiktok.com", "mes", "instagram.com")}
    assert "Anna de Vries" in html and "Chris Bakker" in html
    assert "Bram Jansen" not in html and "discord.com" not in html and "ik maak je af" not in html


def test_care_sees_severe_alerts_of_the_whole_school_but_not_plain_blocks_of_other_groups(
        school: School, client: TestClient) -> None:
    """Care staff without groups see the severe threat of group 5-6 and nothing else."""
    sign_in(client, "zorg")
    html = client.get("/").text
    assert _listed_ids(html) == [school.items["ik maak je af"]]
    assert "Bram Jansen" in html and "Anna de Vries" not in html and "discord.com" not in html


def test_severe_items_come_first_and_are_marked_with_a_badge_in_words(school: School, client: TestClient) -> None:
    """The older severe alert is listed above the newer block, with class severe and the badge "Ernstig"."""
    sign_in(client, "meester")
    html = client.get("/").text
    assert _listed_ids(html) == [school.items["ik maak je af"], school.items["discord.com"]]
    assert re.search(r'<li class="card item severe"[^>]*data-severe="true"', html)
    assert '<span class="badge severe">Ernstig</span>' in html
    assert html.count('class="card item severe"') == 1


def test_an_item_shows_time_rule_category_terms_host_and_state(school: School, client: TestClient) -> None:
    """The blocked search shows its local time in a <time>, the rule, category, term, host and state."""
    sign_in(client, "juf")
    html = client.get("/").text
    item = html[html.index(f'data-id="{school.items["seks"]}"'):]
    item = item[:item.index("</li>")]
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[\d:.]+Z">\d\d:\d\d</time>', item)
    for text in ("Verboden zoekwoorden", "seks", "<q>seks</q>", "www.google.com", "Status: Nieuw"):
        assert text in item


def test_a_device_outside_the_roster_shows_as_a_device_with_its_id(school: School, client: TestClient) -> None:
    """A block from a device no roster names reads "apparaat d-…"."""
    sign_in(client, "juf")
    assert "apparaat d-00aa11bb22cc33dd" in client.get("/").text


@pytest.mark.parametrize(("name", "home"), [("ict", "/it"), ("beheer", "/accounts")])
def test_it_and_admin_are_sent_to_their_own_page_instead_of_the_list(client: TestClient, name: str,
                                                                     home: str) -> None:
    """IT and admin never see the list with names: `/` redirects them to their home page."""
    sign_in(client, name)
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"] == home


def test_the_list_needs_a_session(client: TestClient) -> None:
    """Without a session `/` sends to the sign-in page."""
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_mark_seen_and_close_with_a_note_change_the_item_and_return_to_the_list(school: School,
                                                                                client: TestClient) -> None:
    """Seen, then closed with a note: stored, a 303 back to the list, a confirmation shown."""
    token = sign_in(client, "juf")
    item_id = school.items["seks"]
    response = client.post(f"/alerts/{item_id}", data={"csrf": token, "state": "seen", "back": "/"})
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert _item(school.data_dir, item_id)["state"] == "seen"
    assert "De melding is gemarkeerd als gezien." in client.get("/").text
    response = client.post(f"/alerts/{item_id}", data={"csrf": token, "state": "closed", "note": " besproken ",
                                                       "back": "/"})
    assert response.status_code == 303
    stored = _item(school.data_dir, item_id)
    assert stored["state"] == "closed" and stored["note"] == "besproken" and stored["changed_by"] == "juf"


def test_closed_items_show_only_with_the_toggle(school: School, client: TestClient) -> None:
    """A closed item leaves the list, and comes back with ?closed=1 showing who closed it and the note."""
    token = sign_in(client, "juf")
    item_id = school.items["seks"]
    client.post(f"/alerts/{item_id}", data={"csrf": token, "state": "closed", "note": "gesprek gehad"})
    assert item_id not in _listed_ids(client.get("/").text)
    html = client.get("/?closed=1").text
    assert item_id in _listed_ids(html)
    assert "gesprek gehad" in html and "Afgesloten door juf" in html and 'href="/"' in html


@pytest.mark.parametrize("form", [{"state": "closed", "note": "x" * 501}, {"state": "new"}, {"state": "gone"}, {}])
def test_bad_state_changes_are_refused_and_change_nothing(school: School, client: TestClient,
                                                          form: dict[str, str]) -> None:
    """A note over 500 characters or a state other than seen/closed gets a 400 page; nothing is stored."""
    token = sign_in(client, "juf")
    before = stored_state(school.data_dir)
    response = client.post(f"/alerts/{school.items['seks']}", data={"csrf": token, **form})
    assert response.status_code == 400
    assert stored_state(school.data_dir) == before


def test_a_request_shows_the_two_answer_buttons(school: School, client: TestClient) -> None:
    """A pupil's request has the buttons "Toestaan voor deze les" and "Nee" in a plain form."""
    sign_in(client, "juf")
    html = client.get("/").text
    item = html[html.index(f'data-id="{school.items["tiktok.com"]}"'):]
    item = item[:item.index("</li>")]
    assert f'action="/alerts/{school.items["tiktok.com"]}/answer"' in item
    assert '<button type="submit" name="answer" value="granted">Toestaan voor deze les</button>' in item
    assert '<button type="submit" name="answer" value="refused" class="secondary">Nee</button>' in item


def test_refusing_a_request_closes_it_and_opens_nothing(school: School, client: TestClient) -> None:
    """"Nee" closes the request with the answer refused; no grant is made."""
    token = sign_in(client, "juf")
    item_id = school.items["tiktok.com"]
    response = client.post(f"/alerts/{item_id}/answer", data={"csrf": token, "answer": "refused"})
    assert response.status_code == 303 and response.headers["location"] == "/"
    stored = _item(school.data_dir, item_id)
    assert (stored["state"], stored["answer"]) == ("closed", "refused")
    assert active(school.data_dir, "grant") == []


def test_granting_a_host_request_opens_its_domain_for_the_group_until_the_lesson_ends(
        school: School, client: TestClient) -> None:
    """Allowed at 09:00 school time: tiktok.com opens for groep 7-8 until 10:15, in the proxy's snapshot too."""
    token = sign_in(client, "juf")
    item_id = school.items["tiktok.com"]
    before = datetime.now(UTC)
    response = client.post(f"/alerts/{item_id}/answer", data={"csrf": token, "answer": "granted"})
    assert response.status_code == 303
    stored = _item(school.data_dir, item_id)
    assert (stored["state"], stored["answer"]) == ("closed", "granted")
    [grant] = active(school.data_dir, "grant")
    assert (grant["group_name"], grant["what"], grant["actor"]) == ("groep 7-8", "tiktok.com", "juf")
    until = datetime.fromisoformat(str(grant["until"]))
    # The fake clock said 09:00 a moment ago; the lesson ends at 10:15: 75 minutes from now, on the real clock.
    assert before + timedelta(minutes=75) - timedelta(seconds=5) < until < datetime.now(UTC) + timedelta(minutes=75)
    assert "tiktok.com open voor groep 7-8 tot 10:15" in client.get("/").text

    async def snapshot(store: Store) -> frozenset[str]:
        return (await store.refresh_snapshot()).grants_for("groep 7-8", datetime.now(UTC))

    assert with_store(school.data_dir, snapshot) == {"tiktok.com"}


def test_granting_a_search_words_request_opens_the_category(school: School, client: TestClient) -> None:
    """A request about blocked search words opens their category (violence) for the group."""
    token = sign_in(client, "juf")
    client.post(f"/alerts/{school.items['mes']}/answer", data={"csrf": token, "answer": "granted"})
    assert [(g["group_name"], g["what"]) for g in active(school.data_dir, "grant")] == [("groep 7-8", "violence")]


def test_a_request_is_answered_once(school: School, client: TestClient) -> None:
    """A second answer to a closed request changes nothing and makes no second grant."""
    token = sign_in(client, "juf")
    item_id = school.items["tiktok.com"]
    client.post(f"/alerts/{item_id}/answer", data={"csrf": token, "answer": "refused"})
    response = client.post(f"/alerts/{item_id}/answer", data={"csrf": token, "answer": "granted"})
    assert response.status_code == 303
    assert _item(school.data_dir, item_id)["answer"] == "refused" and active(school.data_dir, "grant") == []
    assert "Dit verzoek was al beantwoord." in client.get("/").text


@pytest.mark.parametrize("form", [{"answer": "granted"}, {"answer": "maybe"}])
def test_only_requests_take_an_answer_and_only_the_two_answers(school: School, client: TestClient,
                                                               form: dict[str, str]) -> None:
    """Answering a plain block, or with an unknown answer, is a 400 and changes nothing."""
    token = sign_in(client, "juf")
    before = stored_state(school.data_dir)
    target = school.items["seks"] if form["answer"] == "granted" else school.items["tiktok.com"]
    assert client.post(f"/alerts/{target}/answer", data={"csrf": token, **form}).status_code == 400
    assert stored_state(school.data_dir) == before


def _li(html: str, item_id: str) -> str:
    item = html[html.index(f'data-id="{item_id}"'):]
    return item[:item.index("</li>")]


def test_a_report_names_its_block_and_an_unconfirmed_request_can_only_be_refused(school: School,
                                                                                  client: TestClient) -> None:
    """A pupil's report shows the rule of the block page it came from, not as words; a request whose category
    the block page could not confirm offers only "Nee", and granting it is a 400 that changes nothing."""
    anna, chris = school.pupils["1001"], school.pupils["1003"]
    record(school.data_dir,
           Event("report", "report", None, "www.google.com", ("search-words",), anna, "groep 7-8", "normal"),
           Event("request", "none", None, "example.org", (), chris, "groep 7-8", "normal"))
    ids = {str(i["action"]): str(i["id"]) for i in _items(school.data_dir) if i["rule"] in ("report", "none")}
    token = sign_in(client, "juf")
    html = client.get("/").text
    report = _li(html, ids["report"])
    assert "Bij de blokkade:</span> Verboden zoekwoorden" in report and "<q>search-words</q>" not in report
    request = _li(html, ids["request"])
    assert ">Nee</button>" in request and "Toestaan voor deze les" not in request
    before = stored_state(school.data_dir)
    assert client.post(f"/alerts/{ids['request']}/answer", data={"csrf": token, "answer": "granted"}
                       ).status_code == 400
    assert stored_state(school.data_dir) == before


def test_a_request_card_says_what_allowing_opens_and_whose_word_the_host_is(school: School,
                                                                             client: TestClient) -> None:
    """A request's host comes from the pupil's form; what "Toestaan voor deze les" opens comes from the list
    entry or category the block page confirmed. The card says both: the host as the block page's, and exactly
    what a grant opens, for which group, until when. A forged host next to a bare category opens the whole
    category, and the card says so; a request whose grant would be refused has no grant button."""
    anna = school.pupils["1001"]
    record(school.data_dir,
           Event("request", "closed-category", "social", "www.wikipedia.org", (), anna, "groep 7-8", "normal"),
           Event("request", "closed-category", "adult", "www.pornhub.com", ("pornhub.com",), anna, "groep 7-8",
                 "normal"))
    ids = {str(i["host"]): str(i["id"]) for i in _items(school.data_dir) if i["action"] == "request"}
    token = sign_in(client, "juf")
    html = client.get("/").text
    domain = _li(html, school.items["tiktok.com"])
    assert "Website volgens de blokkadepagina:</span> www.tiktok.com" in domain
    assert "Toestaan opent: tiktok.com en alles eronder voor groep 7-8 tot het einde van de les." in domain
    assert "Toestaan opent: zoeken op geweld (alle zoekwoorden van die soort) voor groep 7-8 tot het einde van de " \
           "les." in _li(html, school.items["mes"])
    forged = _li(html, ids["www.wikipedia.org"])
    assert "Website volgens de blokkadepagina:</span> www.wikipedia.org" in forged
    assert "Toestaan opent: sociale media (alle websites van die soort) voor groep 7-8 tot het einde van de " \
           "les." in forged
    assert '<button type="submit" name="answer" value="granted">Toestaan voor deze les</button>' in forged
    never = _li(html, ids["www.pornhub.com"])
    assert "Toestaan" not in never and ">Nee</button>" in never
    blocked = _li(html, school.items["seks"])  # the proxy saw this host itself: no remark
    assert "Website:</span> www.google.com" in blocked and "blokkadepagina" not in blocked
    # what the card said is what the grant opens
    client.post(f"/alerts/{ids['www.wikipedia.org']}/answer", data={"csrf": token, "answer": "granted"})
    assert [(g["group_name"], g["what"]) for g in active(school.data_dir, "grant")] == [("groep 7-8", "social")]
    client.cookies.set("lang", "en")
    html = client.get("/").text
    assert "Allowing opens: tiktok.com and everything under it for groep 7-8 until the end of the lesson." in html
    assert "Website according to the block page:</span> www.tiktok.com" in html


def test_a_request_card_outside_a_lesson_says_the_grant_lasts_45_minutes(school: School) -> None:
    """Before school the grant falls back to 45 minutes, and the card says so."""
    with app_client(school.data_dir, fake_clock=LESSON_CLOCK.replace(hour=7)) as client:
        sign_in(client, "juf")
        card = _li(client.get("/").text, school.items["tiktok.com"])
    assert "Toestaan opent: tiktok.com en alles eronder voor groep 7-8 voor 45 minuten (groep 7-8 heeft nu geen " \
           "les)." in card


def test_a_flood_of_reports_cannot_push_a_severe_alert_off_the_list(school: School, client: TestClient,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A pupil who sends more reports than the list reads (FEED_LIMIT, here 20) after a severe alert of their
    group does not hide it: severe items have a query of their own, and the page stays bounded (MAX_CARDS)."""
    monkeypatch.setattr(dashboards.feed, "FEED_LIMIT", 20)
    monkeypatch.setattr(dashboards.feed, "MAX_CARDS", 10)
    bram = school.pupils["1002"]
    flood = _again(school, *[Event("report", "report", None, "www.google.com", ("search-words",), bram,
                                   "groep 5-6", "normal")] * 25)
    sign_in(client, "meester")
    listed = _listed_ids(client.get("/").text)
    assert listed[0] == school.items["ik maak je af"]
    assert listed[1:] == flood[::-1][:9]  # the newest reports fill the rest of the bounded page
    sign_in(client, "zorg")
    assert _listed_ids(client.get("/").text) == [school.items["ik maak je af"]]


# Each state-changing endpoint of the list against every way it must refuse: (who signs in, CSRF, item).
# "own" is an item of juf's group that fits the endpoint: the blocked search, or the request for the answers.
REFUSALS = [
    pytest.param(None, "right", "own", 303, id="no-session"),
    pytest.param("juf", "missing", "own", 403, id="missing-csrf"),
    pytest.param("juf", "wrong", "own", 403, id="wrong-csrf"),
    pytest.param("ict", "right", "own", 403, id="it-role"),
    pytest.param("beheer", "right", "own", 403, id="admin-role"),
    pytest.param("meester", "right", "own", 403, id="other-groups-teacher"),
    pytest.param("juf", "right", "ik maak je af", 403, id="teacher-on-other-groups-severe-alert"),
    pytest.param("zorg", "right", "tiktok.com", 403, id="care-on-a-plain-request-of-another-group"),
]
# The card forms carry the other items of a card in `ids`; "{own}" is another item of juf's group (the device's
# block): the refused item in the path with an allowed one in `ids`, and the other way round.
ENDPOINTS = [
    pytest.param("/alerts/{id}", {"state": "closed", "note": "weg"}, id="state"),
    pytest.param("/alerts/{id}", {"state": "closed", "ids": "{own}"}, id="state-card"),
    pytest.param("/alerts/{own}", {"state": "seen", "ids": "{own} {id}"}, id="state-card-refused-in-ids"),
    pytest.param("/alerts/{id}/answer", {"answer": "granted"}, id="answer-granted"),
    pytest.param("/alerts/{id}/answer", {"answer": "refused"}, id="answer-refused"),
]


@pytest.mark.parametrize(("path", "form"), ENDPOINTS)
@pytest.mark.parametrize(("who", "csrf", "term", "status"), REFUSALS)
def test_every_list_action_refuses_whoever_may_not_and_changes_nothing(
        school: School, client: TestClient, path: str, form: dict[str, str], who: str | None, csrf: str,
        term: str, status: int) -> None:
    """No session: to the sign-in page; bad CSRF, a role without the list, another group's item: 403."""
    if term == "own":
        term = "tiktok.com" if path.endswith("/answer") else "seks"
    item_id, own = school.items[term], school.items["instagram.com"]
    token = csrf_of(client.get("/login").text) if who is None else sign_in(client, who)
    data = {name: value.format(id=item_id, own=own) for name, value in form.items()}
    if csrf == "right":
        data["csrf"] = token
    elif csrf == "wrong":
        data["csrf"] = token[::-1] + "x"
    before = stored_state(school.data_dir)
    response = client.post(path.format(id=item_id, own=own), data=data)
    assert response.status_code == status
    if status == 303:
        assert response.headers["location"].startswith("/login")
    assert stored_state(school.data_dir) == before


def test_care_may_refuse_a_request_of_their_own_group_but_not_grant_it(tmp_path: Path) -> None:
    """Care staff with a group answer its requests "no", but granting is a teacher's: 403."""
    pupils = open_school(tmp_path)

    async def work(store: Store) -> None:
        await store.add_user("test", "ib", "care", PASSWORD, ["groep 7-8"])
        store.record(Event("request", "closed-category", "social", "www.tiktok.com", ("tiktok.com",),
                           pupils["1001"], "groep 7-8"))

    with_store(tmp_path, work)
    [item] = _items(tmp_path)
    with app_client(tmp_path, fake_clock=LESSON_CLOCK) as client:
        token = sign_in(client, "ib")
        html = client.get("/").text
        assert "Toestaan voor deze les" not in html and ">Nee</button>" in html
        before = stored_state(tmp_path)
        assert client.post(f"/alerts/{item['id']}/answer", data={"csrf": token, "answer": "granted"}
                           ).status_code == 403
        assert stored_state(tmp_path) == before
        assert client.post(f"/alerts/{item['id']}/answer", data={"csrf": token, "answer": "refused"}
                           ).status_code == 303
    assert _item(tmp_path, str(item["id"]))["answer"] == "refused"


# --- repeats: one card per thing that happened

def _again(school: School, *events: Event) -> list[str]:
    """Record `events` a few seconds after the school's own (in their order, a second apart); their ids."""
    base = _base_time() + timedelta(seconds=10)
    before = {str(i["id"]) for i in _items(school.data_dir)}
    record(school.data_dir, *(Event(e.action, e.rule, e.category, e.host, e.terms, e.client, e.group, e.severity,
                                    time=base + timedelta(seconds=n)) for n, e in enumerate(events)))
    added = sorted(_items(school.data_dir), key=lambda i: (str(i["time"]), str(i["id"])))
    return [str(i["id"]) for i in added if i["id"] not in before]


def _blocked_search(school: School, term: str = "seks") -> Event:
    """Anna's blocked search, as the school's "seks" block (a browser's retry records it again)."""
    return Event("block", "search-words", "sex", "www.google.com", (term,), school.pupils["1001"], "groep 7-8")


def _cards(html: str) -> list[str]:
    return re.findall(r'<li class="card item.*?</li>', html, flags=re.S)


def _ids_field(card: str) -> list[str]:
    """The other items a card's forms carry (every form of the card the same)."""
    values = re.findall(r'<input type="hidden" name="ids" value="([^"]*)">', card)
    assert values and len(set(values)) == 1
    return str(values[0]).split()


def test_repeats_of_a_block_are_one_card_with_how_often_since_when(school: School, client: TestClient) -> None:
    """The blocked search twice more: one card, of the newest, "3× sinds HH:MM", forms with the two others;
    the rest of the list as it was."""
    ids = [school.items["seks"], *_again(school, _blocked_search(school), _blocked_search(school))]
    sign_in(client, "juf")
    html = client.get("/").text
    cards = [card for card in _cards(html) if "<q>seks</q>" in card]
    assert len(cards) == 1
    [card] = cards
    assert _listed_ids(card) == [ids[-1]]
    assert re.search(r"<time [^>]*>\d\d:\d\d</time> · <strong[^>]*>3× sinds \d\d:\d\d</strong>", card)
    assert re.search(r'data-key="[0-9a-f]{16}" data-count="3"', card)
    assert card.count('name="ids"') == 2 and sorted(_ids_field(card)) == sorted(ids[:2])
    assert card.count("Markeer als gezien") == 1 and card.count("Melding sluiten") == 1
    assert "Opnieuw: Anna de Vries" in card
    assert len(_listed_ids(html)) == 4  # seks (3×), the two requests, the device's block
    client.cookies.set("lang", "en")
    assert re.search(r"3× since \d\d:\d\d", client.get("/").text)


def test_closing_a_card_closes_every_item_of_it(school: School, client: TestClient) -> None:
    """The card's own forms, as the page has them: seen, then closed with a note, act on all three items."""
    ids = [school.items["seks"], *_again(school, _blocked_search(school), _blocked_search(school))]
    token = sign_in(client, "juf")
    card = _li(client.get("/").text, ids[-1])
    response = client.post(f"/alerts/{ids[-1]}", data={"csrf": token, "state": "seen", "back": "/",
                                                       "ids": " ".join(_ids_field(card))})
    assert response.status_code == 303
    assert [_item(school.data_dir, i)["state"] for i in ids] == ["seen"] * 3
    html = client.get("/").text
    assert "De 3 meldingen zijn gemarkeerd als gezien." in html
    card = _li(html, ids[-1])
    assert "3× sinds" in card and "Status: Gezien" in card  # still one card, of a new key (the state is in it)
    response = client.post(f"/alerts/{ids[-1]}", data={"csrf": token, "state": "closed", "note": "besproken",
                                                       "back": "/", "ids": " ".join(_ids_field(card))})
    assert response.status_code == 303
    for item_id in ids:
        stored = _item(school.data_dir, item_id)
        assert (stored["state"], stored["note"], stored["changed_by"]) == ("closed", "besproken", "juf")
    html = client.get("/").text
    assert "De 3 meldingen zijn gesloten." in html and "<q>seks</q>" not in html
    closed = [card for card in _cards(client.get("/?closed=1").text) if "<q>seks</q>" in card]
    assert len(closed) == 1 and "3× sinds" in closed[0] and "besproken" in closed[0]


def test_items_that_differ_in_term_host_or_state_are_cards_of_their_own(school: School,
                                                                          client: TestClient) -> None:
    """Another word, another host, or one already seen: not repeats of the blocked search."""
    other_word = _blocked_search(school, "porno")
    other_host = Event("block", "search-words", "sex", "www.bing.com", ("seks",), school.pupils["1001"], "groep 7-8")
    other_pupil = Event("block", "search-words", "sex", "www.google.com", ("seks",), school.pupils["1003"],
                        "groep 7-8")
    token = sign_in(client, "juf")
    client.post(f"/alerts/{school.items['seks']}", data={"csrf": token, "state": "seen"})
    [repeat, *_] = _again(school, _blocked_search(school), other_word, other_host, other_pupil)
    html = client.get("/").text
    searches = [card for card in _cards(html) if "Geblokkeerd" in card and "Verboden zoekwoorden" in card]
    assert len(searches) == 5 and not any("×" in card for card in searches)
    assert len({re.search(r'data-key="([^"]+)"', card).group(1) for card in searches}) == 5  # type: ignore[union-attr]
    assert "Status: Gezien" in _li(html, school.items["seks"]) and "Status: Nieuw" in _li(html, repeat)


def test_severe_alerts_reports_and_requests_never_collapse(school: School, client: TestClient) -> None:
    """The same threat three times is three severe cards; the same request twice and the same report twice are
    two cards each: a report or request is a deliberate act, and a severe alert is looked at one by one."""
    bram, anna = school.pupils["1002"], school.pupils["1001"]
    threat = Event("alert", "threat", "threat", "web.whatsapp.com", ("ik maak je af",), bram, "groep 5-6", "severe")
    request = Event("request", "closed-category", "social", "www.tiktok.com", ("tiktok.com",), anna, "groep 7-8")
    report = Event("report", "report", None, "www.google.com", ("search-words",), anna, "groep 7-8", "normal")
    _again(school, threat, threat, request, report, report)
    sign_in(client, "meester")
    severe = [card for card in _cards(client.get("/").text) if "ik maak je af" in card]
    assert len(severe) == 3 and all('data-severe="true"' in card for card in severe)
    assert not any("data-key=" in card or "×" in card or 'name="ids"' in card for card in severe)
    sign_in(client, "juf")
    html = client.get("/").text
    requests = [card for card in _cards(html) if "Toestaan voor deze les" in card]
    reports = [card for card in _cards(html) if "Melding van een leerling" in card]
    assert len(requests) == 3 and len(reports) == 2  # the school's two requests and this one; two reports
    assert not any("data-key=" in card or "×" in card for card in requests + reports)


@pytest.mark.parametrize(("who", "path", "others"), [
    pytest.param("juf", "seks", ["repeat", "discord.com"], id="teacher-another-groups-block-among-the-ids"),
    pytest.param("juf", "seks", ["repeat", "ik maak je af"], id="teacher-another-groups-severe-alert-among-the-ids"),
    pytest.param("zorg", "ik maak je af", ["instagram.com"], id="care-a-plain-block-of-another-group-among-the-ids"),
    pytest.param("juf", "seks", ["repeat", "no-such-item"], id="an-unknown-id-among-the-ids"),
])
def test_a_card_form_with_one_item_the_actor_may_not_change_changes_none(
        school: School, client: TestClient, who: str, path: str, others: list[str]) -> None:
    """Every id of a card's form is checked before anything changes: one refused (403) or unknown (404), and
    none of them is seen or closed, not even the ones the actor may change."""
    [repeat] = _again(school, _blocked_search(school))
    known = school.items | {"repeat": repeat, "no-such-item": "0123456789abcdef"}
    token = sign_in(client, who)
    before = stored_state(school.data_dir)
    response = client.post(f"/alerts/{known[path]}", data={"csrf": token, "state": "closed", "note": "weg",
                                                           "ids": " ".join(known[o] for o in others)})
    assert response.status_code == (404 if "no-such-item" in others else 403)
    assert stored_state(school.data_dir) == before


def test_a_card_form_carries_at_most_200_items(school: School, client: TestClient) -> None:
    """More than 200 ids in one form is a 400 that changes nothing; 200 repeats close in one go."""
    ids = [school.items["seks"], *_again(school, *[_blocked_search(school)] * 199)]
    token = sign_in(client, "juf")
    card = _li(client.get("/").text, ids[-1])
    assert "200× sinds" in card and len(_ids_field(card)) == 199
    before = stored_state(school.data_dir)
    too_many = " ".join([*ids[:-1], school.items["instagram.com"]])
    response = client.post(f"/alerts/{ids[-1]}", data={"csrf": token, "state": "closed", "ids": too_many})
    assert response.status_code == 400 and "hoogstens 200" in response.text
    assert stored_state(school.data_dir) == before
    started = time.monotonic()
    response = client.post(f"/alerts/{ids[-1]}", data={"csrf": token, "state": "closed",
                                                       "ids": " ".join(_ids_field(card))})
    assert response.status_code == 303 and time.monotonic() - started < 10
    assert {str(i["id"]) for i in _items(school.data_dir) if i["state"] == "closed"} == set(ids)


# --- /live

def _read_events(lines: Iterator[str], wanted: int, deadline: float) -> list[str]:
    """The data of the next `wanted` item events (lines joined), or fewer if `deadline` (monotonic) passes."""
    found: list[str] = []
    event, data = "", []
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
        elif line == "":
            if event == "item":
                found.append("\n".join(data))
            event, data = "", []
            if len(found) >= wanted:
                break
        if time.monotonic() > deadline:
            break
    return found


def test_live_sends_a_new_item_of_own_groups_as_the_html_of_the_list(school: School, client: TestClient) -> None:
    """An event recorded after the stream opened arrives as `event: item` with the list item's escaped HTML."""
    sign_in(client, "juf")
    pupils = school.pupils
    with client.stream("GET", "/live") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        first = _read_events(lines, wanted=4, deadline=time.monotonic() + 10)  # today's last 15 minutes
        assert len(first) == 4
        started = time.monotonic()
        record(school.data_dir,
               Event("alert", "threat", "threat", "web.whatsapp.com", ("nog een dreiging",), pupils["1002"],
                     "groep 5-6", "severe"),
               Event("block", "search-words", "sex", "www.google.com", ("<b>vet</b>",), pupils["1003"], "groep 7-8"))
        [new] = _read_events(lines, wanted=1, deadline=time.monotonic() + 10)
        assert time.monotonic() - started < 2
    assert new.startswith('<li class="card item"') and new.endswith("</li>")
    assert "Chris Bakker" in new and "&lt;b&gt;vet&lt;/b&gt;" in new and "<b>vet" not in new
    assert 'name="csrf"' in new and "Bram Jansen" not in "".join(first) + new


def _attr(card: str, name: str) -> str | None:
    found = re.search(rf'^<li [^>]*\b{name}="([^"]*)"', card)
    return found.group(1) if found else None


def test_live_sends_the_whole_card_of_a_repeat_under_the_key_of_the_card_on_the_page(school: School,
                                                                                     client: TestClient) -> None:
    """A card of repeats comes on the stream as the page has it (same key, newest id and count: the page
    leaves it); more repeats come as that card, recounted over the day, under the same key (the page replaces
    it), once per key however many came together."""
    ids = [school.items["seks"], *_again(school, _blocked_search(school))]
    sign_in(client, "juf")
    [on_page] = [card for card in _cards(client.get("/").text) if "<q>seks</q>" in card]
    key = _attr(on_page, "data-key")
    assert key and (_attr(on_page, "data-id"), _attr(on_page, "data-count")) == (ids[-1], "2")
    with client.stream("GET", "/live") as response:
        lines = response.iter_lines()
        first = _read_events(lines, wanted=4, deadline=time.monotonic() + 10)
        [sent] = [card for card in first if _attr(card, "data-key") == key]
        assert (_attr(sent, "data-id"), _attr(sent, "data-count")) == (ids[-1], "2")
        more = _again(school, *[_blocked_search(school)] * 3)
        cards: list[str] = []
        deadline = time.monotonic() + 5
        while not cards or _attr(cards[-1], "data-count") != "5":
            cards += _read_events(lines, wanted=1, deadline=deadline)
            assert time.monotonic() < deadline, "the card of five did not come"
            assert len(cards) <= 3, "the stream sends a repeat's card more often than the repeats came"
    assert all(_attr(card, "data-key") == key for card in cards)
    card = cards[-1]
    assert _attr(card, "data-id") == more[-1] and re.search(r"5× sinds \d\d:\d\d", card)
    assert sorted(_ids_field(card)) == sorted(ids + more[:-1]) and "Opnieuw: Anna de Vries" in card


def test_live_needs_a_session_and_the_list_permission(client: TestClient) -> None:
    """No session: 401; IT: 403 (no stream of pupils' names for them)."""
    assert client.get("/live").status_code == 401
    sign_in(client, "ict")
    assert client.get("/live").status_code == 403


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _Uvicorn:
    """The dashboard under a real uvicorn on 127.0.0.1 (a free port), in a thread, as serve.py runs it."""

    def __init__(self, data_dir: Path) -> None:
        app = create_app(DashboardConfig(data_dir=data_dir, fake_clock=LESSON_CLOCK, live_interval=0.05))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = DashboardServer(uvicorn.Config(app, log_level="error", lifespan="on",
                                                     timeout_graceful_shutdown=3), app.state.stopping)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.log = _Kept()
        logging.getLogger("uvicorn.error").addHandler(self.log)

    def __enter__(self) -> _Uvicorn:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    @property
    def ended_by_timeout(self) -> list[str]:
        """uvicorn's own words when it cancelled responses at its graceful timeout."""
        return [r.getMessage() for r in self.log.records if "timeout graceful shutdown exceeded" in r.getMessage()]

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("uvicorn.error").removeHandler(self.log)
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def signed_in(self, name: str) -> httpx2.Client:
        http = httpx2.Client(base_url=self.url, timeout=5)
        token = csrf_of(http.get("/login").text)
        assert http.post("/login", data={"csrf": token, "name": name, "password": PASSWORD}).status_code == 303
        return http


def test_live_over_uvicorn_delivers_within_two_seconds_ends_with_the_client_and_lets_the_server_stop(
        school: School) -> None:
    """Over real HTTP an item arrives within 2 s; a closed connection ends the stream; an open one ends whole when
    the server stops (serve.DashboardServer), rather than holding the stop up and being cut off."""
    with _Uvicorn(school.data_dir) as running:
        http = running.signed_in("juf")
        with http.stream("GET", "/live") as response:
            lines = response.iter_lines()
            assert len(_read_events(lines, wanted=4, deadline=time.monotonic() + 10)) == 4
            started = time.monotonic()
            record(school.data_dir, Event("block", "search-words", "sex", "www.google.com", ("nieuw",),
                                          school.pupils["1001"], "groep 7-8"))
            [new] = _read_events(lines, wanted=1, deadline=time.monotonic() + 5)
            assert time.monotonic() - started < 2 and "<q>nieuw</q>" in new
        deadline = time.monotonic() + 5
        while running.server.server_state.tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running.server.server_state.tasks, "the stream went on after the client left"
        with http.stream("GET", "/live") as response:
            lines = response.iter_lines()  # kept: a dropped iterator would close the connection
            assert _read_events(lines, wanted=1, deadline=time.monotonic() + 10)
            running.server.should_exit = True
            # The stream ends whole (uvicorn would wait out its graceful timeout, 3 s, and then cut it off: the
            # chunked body would end without its last chunk, an error here), and the server stops.
            rest = list(lines)
            assert all(line.startswith((": ping", "event:", "id:", "data:")) or not line for line in rest), rest
            running.thread.join(10)
            assert not running.thread.is_alive()
            assert running.ended_by_timeout == []
        http.close()


CHROMIUM = "/usr/bin/chromium"


def test_in_a_browser_a_repeat_replaces_its_card_at_the_top_keeps_the_note_and_is_announced_once(
        school: School) -> None:
    """feed.js in Debian's chromium: the card of the blocked search, when it repeats, is replaced by the card the
    stream sends (one card, "2×", then "3×"), moves to the top, keeps a note being typed and its focus, and is
    announced once for the burst; closing it closes all three. No reload."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"this test drives Debian's chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does)")

    def again() -> str:  # off the thread where Playwright runs its event loop (record() runs one of its own)
        found: list[str] = []
        worker = threading.Thread(target=lambda: found.extend(_again(school, _blocked_search(school))))
        worker.start()
        worker.join(10)
        return found[-1]

    with _Uvicorn(school.data_dir) as running, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        page = browser.new_page()
        page.goto(f"{running.url}/login")
        page.get_by_label("Gebruikersnaam").fill("juf")
        page.get_by_label("Wachtwoord").fill(PASSWORD)
        page.get_by_role("button", name="Inloggen").click()
        page.wait_for_url(f"{running.url}/")
        page.evaluate("window.notReloaded = true")
        cards = page.locator("#feed li.item")
        card = page.locator("#feed li.item", has_text="seks")
        expect(cards).to_have_count(4)
        assert cards.first.get_attribute("data-id") != school.items["seks"]
        expect(card).not_to_contain_text("×")

        newest = again()
        expect(card).to_contain_text("2× sinds", timeout=2000)
        expect(cards).to_have_count(4)
        assert cards.first.get_attribute("data-id") == newest  # the card moved to the top
        polite = page.locator("#feed-announce")
        expect(polite).to_contain_text("Opnieuw: Anna de Vries")

        card.get_by_label("Notitie").fill("Besproken met Anna")
        newest = again()
        expect(card).to_contain_text("3× sinds", timeout=2000)
        assert card.get_attribute("data-id") == newest
        expect(card.get_by_label("Notitie")).to_have_value("Besproken met Anna")
        expect(card.get_by_label("Notitie")).to_be_focused()
        expect(polite.locator("p", has_text="Opnieuw")).to_have_count(1)  # a burst is announced once
        assert page.evaluate("window.notReloaded") is True

        card.get_by_role("button", name="Melding sluiten").click()
        expect(page.get_by_role("status")).to_contain_text("De 3 meldingen zijn gesloten.")
        expect(card).to_have_count(0)
        browser.close()
    seks = [i for i in _items(school.data_dir) if i["terms"] == ["seks"]]
    assert len(seks) == 3 and all((i["state"], i["note"]) == ("closed", "Besproken met Anna") for i in seks)


# --- the catalogue

def _template_keys(*names: str) -> set[str]:
    """The literal keys of t("...") in these templates; a key built in the template ends in "." and is left out
    (the tests name its values)."""
    keys: set[str] = set()
    for name in names:
        keys |= set(re.findall(r"""\bt\(\s*["']([a-z_.-]+)["']""", (TEMPLATES / name).read_text(encoding="utf-8")))
    return {key for key in keys if not key.endswith(".")}


def test_every_message_of_the_list_exists_in_dutch_and_english() -> None:
    """Keys used by the templates and the labels of actions, rules, categories, states and answers all exist,
    each with two non-empty texts."""
    keys = _template_keys("feed.html", "feed_item.html")
    keys |= {f"feed.action.{a}" for a in FEED_ACTIONS} | {f"feed.state.{s}" for s in ALERT_STATES}
    keys |= {f"feed.answer.{a}" for a in ANSWERS} | {f"category.{c}" for c in (*CATEGORIES, *HOST_CATEGORIES)}
    keys |= {f"feed.rule.{r}" for r in RULES if r not in (*QUIET_RULES, "allow-list", "grant", "none")}
    keys |= {"feed.rule.report", "feed.flash.seen", "feed.flash.closed", "feed.flash.seen.many",
             "feed.flash.closed.many", "feed.repeats", "feed.announce.repeat", "feed.error.too_many"}
    assert keys - MESSAGES.keys() == set()
    for key, texts in MESSAGES.items():
        if key.startswith("feed."):
            assert len(texts) == 2 and all(text.strip() for text in texts), key


def test_the_list_in_english_shows_no_raw_message_keys(school: School, client: TestClient) -> None:
    """With the language cookie "en" every text of the list (teacher and care) is English, none a bare key."""
    client.cookies.set("lang", "en")
    for name, text in (("juf", "Allow for this lesson"), ("zorg", "Severe")):
        sign_in(client, name)
        html = client.get("/?closed=1").text
        assert '<html lang="en">' in html and "Alerts" in html and text in html
        assert not re.findall(r"(?<![/\w.-])(?:feed|lessons|common|error)\.[a-z]", html)
