"""The board's dashboard over one store with two schools (issue 7, point 5): each school's staff see and
change only their own school; the board's accounts see every school, per school, without pupils."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dashboard_helpers import LESSON_CLOCK, PASSWORD, app_client, csrf_of, sign_in
from starlette.testclient import TestClient

from klaswacht.store import Event, Store
from klaswacht.store.roster import RosterRow

SCHOOLS = {
    # school: (teacher, care, admin, it, the pupil with number 1001, a term only its events hold)
    "noord": ("juf-noord", "zorg-noord", "beheer-noord", "ict-noord", "Anna Noordhuis", "noordterm"),
    "zuid": ("juf-zuid", "zorg-zuid", "beheer-zuid", "ict-zuid", "Bram Zuidema", "zuidterm"),
}
GROUP = "groep 7-8"  # the same group name at both schools


def _at[T](data_dir: Path, school: str | None, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run `work` on the store seen as `school` (None: the board), with its writer; flush; close."""

    async def main() -> T:
        async with Store(data_dir, school=school or "default") as store:
            result = await work(store.scoped(school))
            assert await store.flush()
            return result

    return asyncio.run(main())


def _fill(data_dir: Path) -> dict[str, dict[str, str]]:
    """Both schools with their staff, pupil 1001, a block, a severe alert, a request, a grant and a ban; and
    two accounts of the board. Returns per school the ids of its items."""
    made: dict[str, dict[str, str]] = {}
    for school, (teacher, care, admin, it, name, term) in SCHOOLS.items():

        async def work(store: Store, school: str = school, teacher: str = teacher, care: str = care,
                       admin: str = admin, it: str = it, name: str = name, term: str = term) -> dict[str, str]:
            for account, role in ((teacher, "teacher"), (care, "care"), (admin, "admin"), (it, "it")):
                await store.add_user("test", account, role, PASSWORD, [GROUP] if role == "teacher" else [])
            await store.import_roster("test", [RosterRow("1001", name, GROUP)])
            pid = store.pupil_id("1001")
            for event in (Event("block", "search-words", "sex", "www.google.com", (term,), pid, GROUP),
                          Event("alert", "threat", "threat", "web.whatsapp.com", (f"{term} dreigt",), pid, GROUP,
                                "severe"),
                          Event("request", "closed-category", "social", f"www.{term}.nl", (f"{term}.nl",), pid,
                                GROUP, "normal")):
                store.record(event)
            assert await store.flush()
            ids = {e["action"]: e["id"] async for e in store.events()}
            until = datetime(2999, 1, 1, tzinfo=UTC)
            ids["grant"] = await store.grant(teacher, GROUP, f"{term}.nl", until)
            ids["ban"] = await store.ban(teacher, "1001", until, "reden")
            ids["pupil"] = pid
            return ids

        made[school] = _at(data_dir, school, work)

    async def board(store: Store) -> None:
        await store.add_user("test", "bestuur", "admin", PASSWORD, board=True)
        await store.add_user("test", "bestuur-ict", "it", PASSWORD, board=True)

    _at(data_dir, None, board)
    return made


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, str]]]:
    """The two schools, made once (argon2 is slow on purpose); tests that change things work on a copy."""
    data_dir = tmp_path_factory.mktemp("board")
    return data_dir, _fill(data_dir)


def _state(data_dir: Path, school: str) -> tuple[object, ...]:
    """Everything staff can change at `school`: items' states, notes and answers, grants, bans, accounts."""

    async def work(store: Store) -> tuple[object, ...]:
        since = datetime(2000, 1, 1, tzinfo=UTC)
        items = sorted((i["id"], i["state"], i["note"], i["answer"])
                       for i in await store.feed(since=since, states=("new", "seen", "closed")))
        grants = sorted((g["id"], g["until"]) for g in await store.active("grant"))
        bans = sorted((b["id"], b["until"]) for b in await store.active("ban"))
        users = sorted((u["name"], u["role"], u["disabled"], tuple(u["groups"])) for u in await store.users())
        return tuple(items), tuple(grants), tuple(bans), tuple(users)

    return _at(data_dir, school, work)


def _client(data_dir: Path) -> TestClient:
    return app_client(data_dir, fake_clock=LESSON_CLOCK)


@pytest.mark.parametrize(("school", "other"), [("noord", "zuid"), ("zuid", "noord")])
def test_staff_see_only_their_own_schools_pupils_events_and_alerts(
        filled: tuple[Path, dict[str, dict[str, str]]], school: str, other: str) -> None:
    """The live list and the lesson page of a teacher and of care staff hold their school's pupil and terms,
    never the other school's (same group name, same pupil number)."""
    data_dir, _ = filled
    teacher, care, *_, name, term = SCHOOLS[school]
    other_name, other_term = SCHOOLS[other][4], SCHOOLS[other][5]
    with _client(data_dir) as client:
        for account in (teacher, care):
            sign_in(client, account)
            for path in ("/", "/?closed=1", "/lesson"):
                page = client.get(path)
                assert page.status_code == 200
                assert name in page.text, (account, path)
                assert other_name not in page.text and other_term not in page.text, (account, path)
            assert term in client.get("/").text


def test_changes_by_id_of_another_school_are_refused_and_change_nothing(
        filled: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path) -> None:
    """Marking seen, closing, answering, lifting a grant or ban, banning a pupil, and changing an account of the
    other school (forged ids and names) are refused; neither school's data changes."""
    source, ids = filled
    data_dir = tmp_path / "board"
    shutil.copytree(source, data_dir)
    theirs = ids["zuid"]
    before = (_state(data_dir, "noord"), _state(data_dir, "zuid"))
    with _client(data_dir) as client:
        for account in ("juf-noord", "zorg-noord"):
            token = sign_in(client, account)
            for item in (theirs["block"], theirs["alert"], theirs["request"]):
                response = client.post(f"/alerts/{item}", data={"csrf": token, "state": "closed", "note": "x"})
                assert response.status_code == 404, (account, item)
                response = client.post(f"/alerts/{item}", data={"csrf": token, "state": "seen",
                                                                 "ids": ids["noord"]["block"]})
                assert response.status_code == 404
            response = client.post(f"/alerts/{theirs['request']}/answer", data={"csrf": token, "answer": "refused"})
            assert response.status_code == 404
            response = client.post(f"/bans/{theirs['ban']}/lift", data={"csrf": token})
            assert response.status_code == 303  # "already ended": there is no such ban in this school
            response = client.post("/bans", data={"csrf": token, "pupil": theirs["pupil"], "minutes": "30",
                                                  "reason": "x"})
            assert response.status_code in (400, 403)
        token = sign_in(client, "juf-noord")
        assert client.post(f"/grants/{theirs['grant']}/lift", data={"csrf": token}).status_code == 303
        token = sign_in(client, "beheer-noord")
        for path, data in (("/accounts/change", {"name": "juf-zuid", "role": "admin"}),
                           ("/accounts/status", {"name": "juf-zuid", "disabled": "1"}),
                           ("/accounts/password", {"name": "juf-zuid", "password": "overgenomen-wachtwoord"})):
            assert client.post(path, data={"csrf": token, **data}).status_code == 404, path
        assert client.get("/accounts/user?name=juf-zuid").status_code == 404
    assert (_state(data_dir, "noord"), _state(data_dir, "zuid")) == before
    with _client(data_dir) as client:
        sign_in(client, "juf-zuid")  # the account still signs in with its own password
        # The same change in its own school works: the refusals above were about the school.
        token = sign_in(client, "juf-noord")
        assert client.post(f"/alerts/{ids['noord']['block']}", data={"csrf": token, "state": "closed"}
                           ).status_code == 303
    assert _state(data_dir, "zuid") == before[1] and _state(data_dir, "noord") != before[0]


def _csv(client: TestClient) -> list[list[str]]:
    response = client.get("/reports.csv?days=7")
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(response.text.lstrip("\ufeff"))))


def test_reports_csv_accounts_and_audit_are_the_schools_own(filled: tuple[Path, dict[str, dict[str, str]]]) -> None:
    """Reports and their CSV count one school's events; a school's administrator lists its accounts and
    reads its audit log only."""
    data_dir, _ = filled
    with _client(data_dir) as client:
        sign_in(client, "zorg-noord")
        rows = _csv(client)
        assert rows[0] == ["day", "action", "category", "group", "count"]
        assert sorted((r[1], r[3], r[4]) for r in rows[1:]) == [
            ("alert", GROUP, "1"), ("block", GROUP, "1"), ("request", GROUP, "1")]
        sign_in(client, "ict-noord")
        assert sum(int(r[4]) for r in _csv(client)[1:]) == 3
        overblocking = client.get("/it/overblocking?days=7").text
        assert "noordterm.nl" in overblocking and "zuidterm" not in overblocking
        sign_in(client, "beheer-noord")
        accounts = client.get("/accounts").text
        assert "juf-noord" in accounts and "juf-zuid" not in accounts and "bestuur" not in accounts
        audit = client.get("/accounts/audit").text
        assert "juf-noord" in audit and "juf-zuid" not in audit


def test_the_boards_accounts_see_every_school_per_school_and_no_pupil(
        filled: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path) -> None:
    """The board's IT and administrator get counts per school (page and CSV), every account with its school,
    the audit of every school; no live list, no pupil; the administrator makes accounts for a school or the
    board (a teacher of the board is refused)."""
    source, _ = filled
    data_dir = tmp_path / "board"
    shutil.copytree(source, data_dir)
    with _client(data_dir) as client:
        for account in ("bestuur-ict", "bestuur"):
            sign_in(client, account)
            rows = _csv(client)
            assert rows[0] == ["day", "action", "category", "school", "count"]
            assert sorted((r[1], r[3], r[4]) for r in rows[1:] if r[1] == "block") == [
                ("block", "noord", "1"), ("block", "zuid", "1")]
            page = client.get("/reports?days=7").text
            assert "Per school" in page and "noord" in page and "zuid" in page
            assert client.get("/").status_code in (303, 403)  # no live list: sent to their own page
            for name in ("Anna Noordhuis", "Bram Zuidema"):
                assert name not in page
        accounts = client.get("/accounts").text
        assert "juf-noord" in accounts and "juf-zuid" in accounts and "bestuur-ict" in accounts
        audit = client.get("/accounts/audit").text
        assert "juf-noord" in audit and "juf-zuid" in audit
        token = csrf_of(accounts)
        for name, school, role, status in (("meester-zuid", "zuid", "teacher", 303), ("ict-2", "", "it", 303),
                                           ("meester-bestuur", "", "teacher", 400), ("x", "Zuid!", "it", 400)):
            response = client.post("/accounts/add", data={"csrf": token, "name": name, "role": role, "school": school,
                                                          "password": "een-nieuw-wachtwoord"})
            assert response.status_code == status, (name, response.text)
        # A board account cannot become a teacher either.
        response = client.post("/accounts/change", data={"csrf": token, "name": "ict-2", "role": "teacher"})
        assert response.status_code == 400

    async def schools(store: Store) -> dict[str, str | None]:
        return {u["name"]: u["school"] for u in await store.users()}

    made = _at(data_dir, None, schools)
    assert made["meester-zuid"] == "zuid" and made["ict-2"] is None
    assert "meester-bestuur" not in made and "x" not in made
    # A school's administrator who sends a school field still makes an account of their own school.
    with _client(data_dir) as client:
        token = sign_in(client, "beheer-noord")
        client.post("/accounts/add", data={"csrf": token, "name": "meester-n", "role": "teacher", "school": "zuid",
                                           "password": "een-nieuw-wachtwoord"})
    assert _at(data_dir, None, schools)["meester-n"] == "noord"


def _items_on_stream(lines: Iterator[str], deadline: float, until_seen: str) -> list[str]:
    """The data of the `event: item` messages until one holds `until_seen`, or `deadline` (monotonic) passes."""
    found: list[str] = []
    event, data = "", []
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line == "":
            if event == "item":
                found.append("\n".join(data))
                if until_seen in found[-1]:
                    break
            event, data = "", []
        if time.monotonic() > deadline:
            break
    return found


def test_the_live_stream_sends_only_the_own_schools_new_items(
        filled: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path) -> None:
    """`/live` of noord's teacher sends noord's items, first those of today and then a new one; an item of
    zuid's same-named group, recorded just before it, never comes."""
    source, ids = filled
    data_dir = tmp_path / "board"
    shutil.copytree(source, data_dir)
    with _client(data_dir) as client:
        sign_in(client, "juf-noord")
        with client.stream("GET", "/live") as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            first = _items_on_stream(lines, time.monotonic() + 10, "noordterm.nl")
            for school, term in (("zuid", "zuidnieuw"), ("noord", "noordnieuw")):

                async def work(store: Store, school: str = school, term: str = term) -> None:
                    store.record(Event("block", "search-words", "sex", "www.google.com", (term,),
                                       ids[school]["pupil"], GROUP))

                _at(data_dir, school, work)
            later = _items_on_stream(lines, time.monotonic() + 10, "noordnieuw")
    sent = "".join(first + later)
    assert "noordterm" in sent and "noordnieuw" in later[-1] and "Anna Noordhuis" in sent
    assert "zuid" not in sent and "Bram Zuidema" not in sent
