"""Every state-changing endpoint of the dashboard, found by walking the app's routes (so a new form is
covered the day it is added): without a session it sends to sign-in, without the session's CSRF token
it is refused, and either way nothing stored changes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dashboard_helpers import app_client, open_school, sign_in, stored_state, with_store
from starlette.datastructures import Secret
from starlette.routing import Route

from dashboards.app import create_app
from dashboards.config import DashboardConfig


def _post_routes() -> list[str]:
    """Every POST path of the app, path parameters filled in (nothing is opened: the lifespan does not run)."""
    app = create_app(DashboardConfig(data_dir=Path("/nonexistent"), session_secret=Secret("route-walk")))
    paths = []
    for route in app.routes:
        if isinstance(route, Route) and route.methods and "POST" in route.methods:
            paths.append(re.sub(r"\{[a-z_]+\}", "x", route.path))
    return sorted(paths)


POST_ROUTES = _post_routes()


def state(data_dir: Path) -> tuple[object, ...]:
    """Items, grants, bans and the accounts: what any of the forms could change."""
    return stored_state(data_dir), with_store(data_dir, lambda store: store.users())


def test_the_walk_finds_the_forms() -> None:
    """The route walk sees the dashboard's forms (it would prove nothing if it found none)."""
    found = POST_ROUTES
    for expected in ("/login", "/logout", "/grants", "/bans", "/alerts/x", "/accounts/add", "/it/dryrun"):
        assert expected in found


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("school")
    open_school(data_dir)
    return data_dir


@pytest.mark.parametrize("path", POST_ROUTES)
def test_without_a_session_a_form_changes_nothing(school: Path, path: str) -> None:
    """No session: sent to sign-in (or refused), never acted on."""
    before = state(school)
    with app_client(school) as client:
        response = client.post(path, data={"group": "groep 7-8", "category": "social", "state": "closed",
                                           "name": "nieuw", "role": "admin", "password": "x" * 12})
        assert response.status_code in (303, 403)
        if response.status_code == 303:
            assert response.headers["location"].startswith("/login")
    assert state(school) == before


@pytest.mark.parametrize("name", ["juf", "zorg", "beheer"])
@pytest.mark.parametrize("path", [p for p in POST_ROUTES if p != "/login"])
def test_without_the_csrf_token_a_form_is_refused(school: Path, path: str, name: str) -> None:
    """Signed in, but the token missing or wrong: 403 for every form and every role, nothing changed."""
    before = state(school)
    with app_client(school) as client:
        sign_in(client, name)
        for token in ({}, {"csrf": "vervalst"}):
            response = client.post(path, data={**token, "group": "groep 7-8", "category": "social",
                                               "state": "closed", "name": "nieuw", "role": "admin",
                                               "password": "x" * 12})
            assert response.status_code == 403, (path, response.status_code)
    assert state(school) == before
