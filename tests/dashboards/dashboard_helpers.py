"""Helpers of the dashboard tests: a real store in a tmp folder, the app over it, signing in, CSRF.

A module of its own (conftest.py files cannot be imported by name). Store setup runs with
asyncio.run outside the TestClient; the app opens its own connection to the same database.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from starlette.testclient import TestClient

from dashboards.app import create_app
from dashboards.config import DashboardConfig
from klaswacht.store import Event, Store
from klaswacht.store.roster import RosterRow

PASSWORD = "een-goed-wachtwoord"


def with_store[T](data_dir: Path, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run `work` on a store opened on `data_dir` (with its writer), flush what it recorded, close it."""

    async def main() -> T:
        async with Store(data_dir) as store:
            result = await work(store)
            assert await store.flush(), "recorded events did not reach the database"
            return result

    return asyncio.run(main())


def add_staff(data_dir: Path, *accounts: tuple[str, str, Iterable[str]]) -> None:
    """Accounts (name, role, groups), each with PASSWORD."""

    async def work(store: Store) -> None:
        for name, role, groups in accounts:
            await store.add_user("test", name, role, PASSWORD, list(groups))

    with_store(data_dir, work)


def add_pupils(data_dir: Path, *rows: RosterRow) -> dict[str, str]:
    """Import roster rows; returns pupil number -> pseudonymous id."""

    async def work(store: Store) -> dict[str, str]:
        await store.import_roster("test", rows)
        return {r.number: store.pseudonyms.pupil(r.number) for r in rows}

    return with_store(data_dir, work)


def record(data_dir: Path, *events: Event) -> None:
    """Record events through the store's own path and wait until they are in the database."""

    async def work(store: Store) -> None:
        for event in events:
            store.record(event)

    with_store(data_dir, work)


def active(data_dir: Path, kind: str) -> list[dict[str, object]]:
    """The store's active grants or bans (`kind`)."""

    async def work(store: Store) -> list[dict[str, object]]:
        return list(await store.active(kind))

    return with_store(data_dir, work)


def app_client(data_dir: Path, **config: object) -> TestClient:
    """A TestClient (not following redirects) over the dashboard on `data_dir`; use it in `with`."""
    return TestClient(create_app(DashboardConfig(data_dir=data_dir, **config)),  # type: ignore[arg-type]
                      follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Sign in as `name` (after whoever was signed in); returns the session's CSRF token (from the sign-out form)."""
    if "klaswacht" in client.cookies:
        client.cookies.delete("klaswacht")
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"csrf": token, "name": name, "password": password})
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/no-such-page").text)


# A school for the tests of the live list and "This lesson": two groups, each with a teacher; care, IT, admin.
# The timetable's clock stands on a Monday at 09:00 school time, in a lesson of the shipped primary policy's
# default timetable that ends at 10:15; events, grants and bans keep real times.
LESSON_CLOCK = datetime(2026, 11, 16, 9, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
SCHOOL_STAFF = (("juf", "teacher", ["groep 7-8"]), ("meester", "teacher", ["groep 5-6"]), ("zorg", "care", []),
                ("ict", "it", []), ("beheer", "admin", []))
SCHOOL_PUPILS = (RosterRow("1001", "Anna de Vries", "groep 7-8"), RosterRow("1002", "Bram Jansen", "groep 5-6"),
                 RosterRow("1003", "Chris Bakker", "groep 7-8"))


def open_school(data_dir: Path, template: Path | None = None) -> dict[str, str]:
    """SCHOOL_STAFF and SCHOOL_PUPILS in the store; returns pupil number -> pseudonymous id.

    With `template` (a data dir that open_school filled before, now closed) the school is a copy of it: each
    account costs an argon2 hash, a copy costs nothing.
    """
    if template is None:
        add_staff(data_dir, *SCHOOL_STAFF)
        return add_pupils(data_dir, *SCHOOL_PUPILS)
    shutil.copytree(template, data_dir, dirs_exist_ok=True)

    async def ids(store: Store) -> dict[str, str]:
        return {row["number"]: row["id"] for row in await store.pupils()}

    return with_store(data_dir, ids)


def stored_state(data_dir: Path) -> tuple[object, ...]:
    """Everything a staff action can change (items' states and answers, grants, bans): equal before and after
    a refused request."""

    async def work(store: Store) -> tuple[object, ...]:
        since = datetime(2000, 1, 1, tzinfo=UTC)
        items = [(i["id"], i["state"], i["note"], i["answer"])
                 for i in await store.feed(since=since, states=("new", "seen", "closed"))]
        grants = [(g["id"], g["until"]) for g in await store.active("grant")]
        bans = [(b["id"], b["until"]) for b in await store.active("ban")]
        return tuple(sorted(items)), tuple(sorted(grants)), tuple(sorted(bans))

    return with_store(data_dir, work)
