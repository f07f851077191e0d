"""The page "This lesson" (`/lesson`): grants, bans, their forms and checks, and the school clock of timing.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dashboard_helpers import (
    LESSON_CLOCK,
    active,
    app_client,
    csrf_of,
    open_school,
    sign_in,
    stored_state,
    with_store,
)
from starlette.testclient import TestClient

from dashboards.catalogue import MESSAGES
from dashboards.config import DashboardConfig
from dashboards.timing import FALLBACK, SchoolClock, local_midnight
from filters.policy import PERIODS
from klaswacht.loading import DEFAULT_POLICY, load_policy
from klaswacht.store import Store

TEMPLATES = Path(__file__).resolve().parents[2] / "dashboards" / "templates"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
POLICY = load_policy(DEFAULT_POLICY)


@dataclass
class School:
    data_dir: Path
    pupils: dict[str, str]  # pupil number -> pseudonymous id
    grant: str  # an active grant of groep 7-8 (social media, for an hour)
    ban: str  # an active ban of Anna (groep 7-8)


@pytest.fixture
def school(tmp_path: Path, template: Path) -> School:
    pupils = open_school(tmp_path, template)

    async def work(store: Store) -> tuple[str, str]:
        until = datetime.now(UTC) + timedelta(hours=1)
        return (await store.grant("test", "groep 7-8", "social", until),
                await store.ban("test", pupils["1001"], until, "te vaak op tiktok"))

    grant, ban = with_store(tmp_path, work)
    return School(tmp_path, pupils, grant, ban)


def _client(school: School, clock: datetime = LESSON_CLOCK) -> TestClient:
    return app_client(school.data_dir, fake_clock=clock)


@pytest.fixture
def client(school: School) -> Iterator[TestClient]:
    with _client(school) as c:
        yield c


def _new(data_dir: Path, kind: str, known: str) -> dict[str, object]:
    """The one active grant or ban other than the fixture's."""
    [row] = [r for r in active(data_dir, kind) if r["id"] != known]
    return row


def _until(row: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(row["until"]))


def _close_to(moment: datetime, expected: datetime, slack: float = 10) -> bool:
    return abs((moment - expected).total_seconds()) < slack


# --- the page

def test_the_page_shows_each_group_with_its_period_and_when_the_lesson_ends(client: TestClient) -> None:
    """At 09:00 on a Monday groep 7-8 is in a lesson until 10:15 (the break)."""
    sign_in(client, "juf")
    html = client.get("/lesson").text
    assert '<li class="card" data-group="groep 7-8">' in html and "Les tot 10:15" in html
    assert "groep 5-6" not in html


def test_the_page_lists_active_grants_with_a_countdown_and_a_lift_button(school: School, client: TestClient) -> None:
    """The grant shows what, for which group, its end in a <time datetime> for the countdown, and a lift form."""
    sign_in(client, "juf")
    html = client.get("/lesson").text
    row = html[html.index(f'<tr data-id="{school.grant}">'):]
    row = row[:row.index("</tr>")]
    assert "Sociale media" in row and "groep 7-8" in row
    assert re.search(r'<time datetime="[\d\-T:.]+Z" data-countdown [^>]*>\d\d:\d\d</time>', row)
    assert f'action="/grants/{school.grant}/lift"' in row and "Sociale media weer dichtzetten" in row
    assert '<script src="/static/lesson.js" defer></script>' in html


def test_the_grant_form_preselects_the_only_group_and_offers_only_what_may_open(client: TestClient) -> None:
    """One group is preselected; categories are the lesson's closed host categories and the search words,
    never what the policy keeps closed (adult, gambling, vpn, doh)."""
    sign_in(client, "juf")
    html = client.get("/lesson").text
    assert '<option value="groep 7-8" selected>' in html
    select = html[html.index('<select id="grant-category"'):]
    offered = re.findall(r'<option value="([^"]*)"', select[:select.index("</select>")])
    assert offered == ["", "chat", "social", "webmail", "coarse", "discrimination", "sex", "violence"]
    for control in ("grant-group", "grant-category", "grant-host", "grant-lesson", "grant-for-minutes",
                    "grant-minutes", "ban-pupil", "ban-until", "ban-minutes", "ban-reason"):
        assert f'<label for="{control}">' in html and f'id="{control}"' in html


def test_a_teacher_sees_bans_and_pupils_of_their_own_groups_only(school: School, client: TestClient) -> None:
    """juf sees Anna's ban with its reason and can ban Anna or Chris; meester sees neither ban nor those names."""
    sign_in(client, "juf")
    html = client.get("/lesson").text
    assert "te vaak op tiktok" in html and "Blokkade van Anna de Vries opheffen" in html
    assert ">Chris Bakker</option>" in html and "Bram Jansen" not in html
    sign_in(client, "meester")
    html = client.get("/lesson").text
    assert "Anna de Vries" not in html and "te vaak op tiktok" not in html and ">Bram Jansen</option>" in html


def test_care_sees_every_ban_and_pupil_but_no_grant_form(client: TestClient) -> None:
    """Care staff ban for the whole school and grant nothing."""
    sign_in(client, "zorg")
    html = client.get("/lesson").text
    assert "te vaak op tiktok" in html and ">Bram Jansen</option>" in html and ">Anna de Vries</option>" in html
    assert 'action="/grants"' not in html and 'action="/bans"' in html


@pytest.mark.parametrize("name", ["ict", "beheer"])
def test_it_and_admin_may_not_see_the_page(client: TestClient, name: str) -> None:
    """IT and admin get a 403 and no pupil's name."""
    sign_in(client, name)
    response = client.get("/lesson")
    assert response.status_code == 403 and "Anna" not in response.text


# --- grants

def test_a_grant_until_the_end_of_the_lesson_lasts_until_the_break(school: School, client: TestClient) -> None:
    """Social media for groep 7-8 at 09:00 school time: until 10:15, i.e. 75 minutes from now; confirmed."""
    token = sign_in(client, "juf")
    response = client.post("/grants", data={"csrf": token, "group": "groep 7-8", "category": "chat",
                                            "duration": "lesson"})
    assert response.status_code == 303 and response.headers["location"] == "/lesson"
    grant = _new(school.data_dir, "grant", school.grant)
    assert (grant["group_name"], grant["what"], grant["actor"]) == ("groep 7-8", "chat", "juf")
    assert _close_to(_until(grant), datetime.now(UTC) + timedelta(minutes=75))
    html = client.get("/lesson").text
    assert "Chat open voor groep 7-8 tot 10:15" in html and re.search(r"data-countdown [^>]*>10:15</time>", html)


def test_a_grant_for_a_pasted_address_opens_its_host_for_some_minutes(school: School, client: TestClient) -> None:
    """A URL pasted from the address bar opens its host; 30 minutes end 30 minutes from now."""
    token = sign_in(client, "juf")
    client.post("/grants", data={"csrf": token, "group": "groep 7-8", "host": "https://www.TikTok.com/@juf?x=1",
                                 "duration": "minutes", "minutes": "30"})
    grant = _new(school.data_dir, "grant", school.grant)
    assert grant["what"] == "www.tiktok.com"
    assert _close_to(_until(grant), datetime.now(UTC) + timedelta(minutes=30))

    async def snapshot(store: Store) -> frozenset[str]:
        return (await store.refresh_snapshot()).grants_for("groep 7-8", datetime.now(UTC))

    assert with_store(school.data_dir, snapshot) == {"social", "www.tiktok.com"}


def test_outside_a_lesson_until_the_end_of_the_lesson_means_45_minutes_and_says_so(school: School) -> None:
    """In the break (10:20) the page says so and a grant "until the end of this lesson" lasts 45 minutes."""
    with _client(school, LESSON_CLOCK.replace(hour=10, minute=20)) as client:
        token = sign_in(client, "juf")
        html = client.get("/lesson").text
        assert "Pauze tot 10:30" in html and "Nu geen les" in html
        client.post("/grants", data={"csrf": token, "group": "groep 7-8", "category": "sex"})
        grant = _new(school.data_dir, "grant", school.grant)
        assert grant["what"] == "sex" and _close_to(_until(grant), datetime.now(UTC) + FALLBACK)
        assert "heeft nu geen les: 45 minuten" in client.get("/lesson").text


@pytest.mark.parametrize("form", [
    pytest.param({"category": "chat", "host": "www.tiktok.com"}, id="both"),
    pytest.param({}, id="neither"),
    pytest.param({"category": "adult"}, id="never-open-category"),
    pytest.param({"category": "self-harm"}, id="not-offered-category"),
    pytest.param({"host": "geen website!"}, id="not-a-host"),
    pytest.param({"host": "wikipedia.org"}, id="host-not-closed"),
    pytest.param({"host": "magister.net"}, id="allow-listed-host"),
    pytest.param({"category": "chat", "duration": "minutes", "minutes": "0"}, id="zero-minutes"),
    pytest.param({"category": "chat", "duration": "minutes", "minutes": "241"}, id="too-many-minutes"),
    pytest.param({"category": "chat", "duration": "minutes", "minutes": "tien"}, id="minutes-not-a-number"),
    pytest.param({"category": "chat", "duration": "minutes", "minutes": "²"}, id="minutes-a-superscript"),
    pytest.param({"host": "http://[::1/"}, id="url-urllib-cannot-read"),
])
def test_a_grant_that_cannot_be_made_is_refused_and_changes_nothing(school: School, client: TestClient,
                                                                    form: dict[str, str]) -> None:
    """Bad grant forms get a 400 page that says why; no grant is stored."""
    token = sign_in(client, "juf")
    before = stored_state(school.data_dir)
    response = client.post("/grants", data={"csrf": token, "group": "groep 7-8", **form})
    assert response.status_code == 400 and 'role="alert"' in response.text
    assert stored_state(school.data_dir) == before


def test_a_grant_of_a_host_the_school_keeps_closed_is_refused(school: School, client: TestClient) -> None:
    """A host in a never-open category (here: one of the shipped adult list) cannot be opened."""
    adult = next(line.strip() for line in (DEFAULT_POLICY.parents[1] / "wordlists" / "hosts" / "adult.txt")
                 .read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#"))
    token = sign_in(client, "juf")
    before = stored_state(school.data_dir)
    response = client.post("/grants", data={"csrf": token, "group": "groep 7-8", "host": adult})
    assert response.status_code == 400 and "altijd dicht" in response.text
    assert stored_state(school.data_dir) == before


def test_lifting_a_grant_ends_it_at_once(school: School, client: TestClient) -> None:
    """The lift button ends the grant: gone from the active grants, confirmed on the page."""
    token = sign_in(client, "juf")
    response = client.post(f"/grants/{school.grant}/lift", data={"csrf": token})
    assert response.status_code == 303
    assert active(school.data_dir, "grant") == []
    assert "Sociale media is weer dicht voor groep 7-8." in client.get("/lesson").text


# --- bans

def test_a_ban_until_a_time_today_is_in_the_proxys_snapshot(school: School, client: TestClient) -> None:
    """Chris banned until 10:45 school time (105 minutes after 09:00): stored, in the snapshot, on the page."""
    token = sign_in(client, "juf")
    response = client.post("/bans", data={"csrf": token, "pupil": school.pupils["1003"], "until": "10:45",
                                          "reason": "  filmpjes gekeken  "})
    assert response.status_code == 303 and response.headers["location"] == "/lesson"
    ban = _new(school.data_dir, "ban", school.ban)
    assert (ban["pupil"], ban["reason"], ban["actor"]) == (school.pupils["1003"], "filmpjes gekeken", "juf")
    assert _close_to(_until(ban), datetime.now(UTC) + timedelta(minutes=105))

    async def banned(store: Store) -> bool:
        return (await store.refresh_snapshot()).banned(school.pupils["1003"], datetime.now(UTC))

    assert with_store(school.data_dir, banned)
    html = client.get("/lesson").text
    assert "De leerling is geblokkeerd tot 10:45." in html and "filmpjes gekeken" in html


def test_a_ban_for_some_minutes(school: School, client: TestClient) -> None:
    """A ban of 20 minutes ends 20 minutes from now."""
    token = sign_in(client, "juf")
    client.post("/bans", data={"csrf": token, "pupil": school.pupils["1003"], "minutes": "20", "reason": "ruzie"})
    assert _close_to(_until(_new(school.data_dir, "ban", school.ban)), datetime.now(UTC) + timedelta(minutes=20))


@pytest.mark.parametrize("form", [
    pytest.param({"until": "08:00", "reason": "r"}, id="time-passed"),
    pytest.param({"until": "25:00", "reason": "r"}, id="not-a-time"),
    pytest.param({"until": "10:45", "minutes": "20", "reason": "r"}, id="time-and-minutes"),
    pytest.param({"reason": "r"}, id="no-end"),
    pytest.param({"minutes": "0", "reason": "r"}, id="zero-minutes"),
    pytest.param({"minutes": "¹²", "reason": "r"}, id="minutes-superscripts"),
    pytest.param({"until": "10:45"}, id="no-reason"),
    pytest.param({"until": "10:45", "reason": "   "}, id="blank-reason"),
    pytest.param({"until": "10:45", "reason": "x" * 201}, id="reason-too-long"),
])
def test_a_ban_that_cannot_be_made_is_refused_and_changes_nothing(school: School, client: TestClient,
                                                                  form: dict[str, str]) -> None:
    """Bad ban forms get a 400 page; no ban is stored."""
    token = sign_in(client, "juf")
    before = stored_state(school.data_dir)
    response = client.post("/bans", data={"csrf": token, "pupil": school.pupils["1003"], **form})
    assert response.status_code == 400
    assert stored_state(school.data_dir) == before


def test_lifting_a_ban_lets_the_pupil_back_on_at_once(school: School, client: TestClient) -> None:
    """After the lift the snapshot no longer bans Anna."""
    token = sign_in(client, "juf")
    assert client.post(f"/bans/{school.ban}/lift", data={"csrf": token}).status_code == 303

    async def banned(store: Store) -> bool:
        return (await store.refresh_snapshot()).banned(school.pupils["1001"], datetime.now(UTC))

    assert not with_store(school.data_dir, banned)
    assert "De blokkade is opgeheven." in client.get("/lesson").text


def test_care_may_ban_and_lift_for_any_group(school: School, client: TestClient) -> None:
    """Care staff ban Bram (groep 5-6) and lift Anna's ban (groep 7-8)."""
    token = sign_in(client, "zorg")
    assert client.post("/bans", data={"csrf": token, "pupil": school.pupils["1002"], "minutes": "10",
                                      "reason": "dreigend bericht"}).status_code == 303
    assert client.post(f"/bans/{school.ban}/lift", data={"csrf": token}).status_code == 303
    assert [b["pupil"] for b in active(school.data_dir, "ban")] == [school.pupils["1002"]]


def test_lifting_what_has_ended_already_says_so(school: School, client: TestClient) -> None:
    """A second lift (a double click) changes nothing and tells that it had ended."""
    token = sign_in(client, "juf")
    client.post(f"/grants/{school.grant}/lift", data={"csrf": token})
    assert client.post(f"/grants/{school.grant}/lift", data={"csrf": token}).status_code == 303
    assert "Dit was al afgelopen." in client.get("/lesson").text


# Each state-changing endpoint of the page against every way it must refuse. The fixture's grant and ban
# belong to groep 7-8 (juf's); meester teaches groep 5-6.
ENDPOINTS = [
    pytest.param("/grants", "own", id="grant"),
    pytest.param("/grants/{grant}/lift", "", id="lift-grant"),
    pytest.param("/bans", "own", id="ban"),
    pytest.param("/bans/{ban}/lift", "", id="lift-ban"),
]
REFUSALS = [
    pytest.param(None, "right", 303, id="no-session"),
    pytest.param("juf", "missing", 403, id="missing-csrf"),
    pytest.param("juf", "wrong", 403, id="wrong-csrf"),
    pytest.param("ict", "right", 403, id="it-role"),
    pytest.param("beheer", "right", 403, id="admin-role"),
    pytest.param("meester", "right", 403, id="other-groups-teacher"),
]


def _form(path: str, school: School, who: str | None) -> dict[str, str]:
    """A form that juf may send: for groep 7-8, or for Chris; the lifts need none."""
    if path == "/grants":
        return {"group": "groep 7-8", "category": "chat"}
    if path == "/bans":
        return {"pupil": school.pupils["1003"], "minutes": "10", "reason": "test"}
    return {}


@pytest.mark.parametrize(("path", "kind"), ENDPOINTS)
@pytest.mark.parametrize(("who", "csrf", "status"), REFUSALS)
def test_every_lesson_action_refuses_whoever_may_not_and_changes_nothing(
        school: School, client: TestClient, path: str, kind: str, who: str | None, csrf: str, status: int) -> None:
    """No session: to the sign-in page; bad CSRF, a role without the right, another group's teacher: 403."""
    token = csrf_of(client.get("/login").text) if who is None else sign_in(client, who)
    data = _form(path, school, who)
    if csrf == "right":
        data["csrf"] = token
    elif csrf == "wrong":
        data["csrf"] = token[::-1] + "x"
    before = stored_state(school.data_dir)
    response = client.post(path.format(grant=school.grant, ban=school.ban), data=data)
    assert response.status_code == status
    if status == 303:
        assert response.headers["location"].startswith("/login")
    assert stored_state(school.data_dir) == before


@pytest.mark.parametrize("path", ["/grants", "/grants/{grant}/lift"])
def test_care_staff_cannot_grant_or_lift_grants(school: School, client: TestClient, path: str) -> None:
    """Granting is a teacher's: care staff get a 403 and nothing changes."""
    token = sign_in(client, "zorg")
    before = stored_state(school.data_dir)
    data = {"csrf": token, "group": "groep 7-8", "category": "chat"}
    assert client.post(path.format(grant=school.grant), data=data).status_code == 403
    assert stored_state(school.data_dir) == before


@pytest.mark.parametrize("form", [{"group": "groep 5-6", "category": "chat"}, {"group": "", "category": "chat"},
                                  {"group": "groep 9", "category": "chat"}])
def test_a_teacher_grants_only_for_their_own_groups(school: School, client: TestClient,
                                                     form: dict[str, str]) -> None:
    """A grant for another group, no group or an unknown one: 403, nothing stored."""
    token = sign_in(client, "juf")
    before = stored_state(school.data_dir)
    assert client.post("/grants", data={"csrf": token, **form}).status_code == 403
    assert stored_state(school.data_dir) == before


@pytest.mark.parametrize("pupil", ["1002", "p-0000000000000000"])
def test_a_teacher_bans_only_pupils_of_their_own_groups(school: School, client: TestClient, pupil: str) -> None:
    """A ban of another group's pupil or of an id no roster holds: 403, nothing stored."""
    token = sign_in(client, "juf")
    before = stored_state(school.data_dir)
    response = client.post("/bans", data={"csrf": token, "pupil": school.pupils.get(pupil, pupil), "minutes": "5",
                                          "reason": "test"})
    assert response.status_code == 403
    assert stored_state(school.data_dir) == before


# --- the catalogue

def _template_keys(*names: str) -> set[str]:
    """The literal keys of t("...") in these templates; a key built in the template ends in "." and is left out
    (the tests name its values)."""
    keys: set[str] = set()
    for name in names:
        keys |= set(re.findall(r"""\bt\(\s*["']([a-z_.-]+)["']""", (TEMPLATES / name).read_text(encoding="utf-8")))
    return {key for key in keys if not key.endswith(".")}


def test_every_message_of_the_page_exists_in_dutch_and_english() -> None:
    """Keys of the template, the periods and the flashes all exist, each with two non-empty texts."""
    keys = _template_keys("lesson.html") | {f"lessons.period.{p}" for p in PERIODS}
    assert keys - MESSAGES.keys() == set()
    for key, texts in MESSAGES.items():
        if key.startswith("lessons."):
            assert len(texts) == 2 and all(text.strip() for text in texts), key


def test_the_page_in_english_shows_no_raw_message_keys(school: School, client: TestClient) -> None:
    """With the language cookie "en", after a grant (its flash), the page is English with no bare keys."""
    client.cookies.set("lang", "en")
    for name in ("juf", "zorg"):
        token = sign_in(client, name)
        if name == "juf":
            client.post("/grants", data={"csrf": token, "group": "groep 7-8", "category": "sex"})
        html = client.get("/lesson").text
        assert '<html lang="en">' in html and "This lesson" in html
        assert not re.findall(r"(?<![/\w.-])(?:feed|lessons|common|error)\.[a-z]", html)
    assert "Lift the ban of Anna de Vries" in html


# --- timing.py

def _clock(local: datetime) -> SchoolClock:
    """A SchoolClock whose timetable stands at the Amsterdam wall-clock time `local`, an hour before the real now."""
    real_now = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
    return SchoolClock(POLICY, AMSTERDAM, real_now, local.replace(tzinfo=AMSTERDAM).astimezone(UTC))


@pytest.mark.parametrize(("local", "period", "end"), [
    (datetime(2026, 11, 16, 9, 0), "lesson", time(10, 15)),
    (datetime(2026, 11, 16, 10, 20), "break", time(10, 30)),
    (datetime(2026, 11, 16, 10, 30), "lesson", time(12, 0)),
    (datetime(2026, 11, 16, 13, 0), "lesson", time(14, 15)),
    (datetime(2026, 11, 16, 7, 0), "outside", None),
    (datetime(2026, 12, 21, 9, 0), "holiday", None),
])
def test_the_period_and_its_end_on_the_timetables_clock(local: datetime, period: str, end: time | None) -> None:
    """The period of groep 7-8 and its end, read at the timetable's time and shown on its clock."""
    clock = _clock(local)
    assert clock.period("groep 7-8") == period
    found = clock.period_end("groep 7-8")
    assert (found and clock.local(found).time()) == end or (found is None and end is None)


def test_the_end_of_the_lesson_is_the_real_now_plus_what_is_left_on_the_timetable() -> None:
    """09:00 on the timetable with the lesson ending 10:15: 75 minutes after the real now, whatever that is."""
    clock = _clock(datetime(2026, 11, 16, 9, 0))
    assert clock.until_lesson_end("groep 7-8") == (clock.real_now + timedelta(minutes=75), False)
    assert clock.hhmm(clock.real_now + timedelta(minutes=75)) == "10:15"
    assert clock.hhmm(clock.real_now + timedelta(minutes=75, milliseconds=-1)) == "10:15"  # as the store rounds
    assert clock.hhmm(clock.real_now + timedelta(minutes=75, seconds=-1)) == "10:14"
    assert clock.at_today(time(10, 45)) == clock.real_now + timedelta(minutes=105)


def test_outside_a_lesson_the_end_falls_back_to_45_minutes() -> None:
    """In a break there is no lesson end: 45 minutes from now, and it says it fell back."""
    clock = _clock(datetime(2026, 11, 16, 10, 20))
    assert clock.lesson_end("groep 7-8") is None
    assert clock.until_lesson_end("groep 7-8") == (clock.real_now + FALLBACK, True)


@pytest.mark.parametrize(("moment", "midnight"), [
    (datetime(2026, 11, 23, 22, 30, tzinfo=UTC), datetime(2026, 11, 22, 23, 0, tzinfo=UTC)),  # 23:30 CET
    (datetime(2026, 11, 23, 23, 30, tzinfo=UTC), datetime(2026, 11, 23, 23, 0, tzinfo=UTC)),  # 00:30 CET
    (datetime(2026, 6, 1, 12, 0, tzinfo=UTC), datetime(2026, 5, 31, 22, 0, tzinfo=UTC)),  # CEST
    (datetime(2026, 3, 29, 12, 0, tzinfo=UTC), datetime(2026, 3, 28, 23, 0, tzinfo=UTC)),  # clocks go forward
])
def test_local_midnight_is_the_start_of_the_schools_day(moment: datetime, midnight: datetime) -> None:
    """Today's midnight in Amsterdam as a UTC instant, in winter, summer and on the day the clocks change."""
    assert local_midnight(moment, AMSTERDAM) == midnight


def test_without_a_fake_clock_the_timetable_reads_the_real_clock() -> None:
    """No fake clock: both nows are one instant, so times are shown as they are."""
    clock = SchoolClock.of(POLICY, DashboardConfig(data_dir=Path("/nonexistent")))
    assert clock.timetable_now == clock.real_now
    assert clock.local(clock.real_now) == clock.real_now.astimezone(AMSTERDAM).replace(tzinfo=None)
