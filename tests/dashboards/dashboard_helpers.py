"""Helpers of the dashboard tests: a real store in a tmp folder, the app over it, signing in, CSRF.

A module of its own (conftest.py files cannot be imported by name). Store setup runs with
asyncio.run outside the TestClient; the app opens its own connection to the same database.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

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


def app_client(data_dir: Path, **config: object) -> TestClient:
    """A TestClient (not following redirects) over the dashboard on `data_dir`; use it in `with`."""
    return TestClient(create_app(DashboardConfig(data_dir=data_dir, **config)),  # type: ignore[arg-type]
                      follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Sign in as `name`; returns the session's CSRF token (read from a page's sign-out form)."""
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"csrf": token, "name": name, "password": password})
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/no-such-page").text)
