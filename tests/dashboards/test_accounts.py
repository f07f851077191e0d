"""Accounts and the audit log: the administrator adds, changes, disables and re-keys accounts; nobody else may."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import PASSWORD, add_pupils, add_staff, app_client, csrf_of, sign_in, with_store
from starlette.testclient import TestClient

from dashboards.accounts import audit_rows
from dashboards.catalogue import MESSAGES
from klaswacht.store import Store
from klaswacht.store.model import now_utc
from klaswacht.store.roster import RosterRow

NEW_PASSWORD = "nog-een-goed-wachtwoord"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    add_staff(tmp_path, ("beheer", "admin", []), ("juf", "teacher", ["groep 7"]), ("zorg", "care", []),
              ("ict", "it", []))
    return tmp_path


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    with app_client(data_dir) as c:
        yield c


def users(data_dir: Path) -> dict[str, dict[str, Any]]:
    async def work(store: Store) -> dict[str, dict[str, Any]]:
        return {u["name"]: u for u in await store.users()}
    return with_store(data_dir, work)


def audit(data_dir: Path) -> list[tuple[str, str, str | None]]:
    async def work(store: Store) -> list[tuple[str, str, str | None]]:
        return [(r["actor"], r["action"], r["target"]) for r in await store.audit_log()]
    return with_store(data_dir, work)


def can_sign_in(data_dir: Path, name: str, password: str) -> bool:
    async def work(store: Store) -> bool:
        return await store.verify_user(name, password) is not None
    return with_store(data_dir, work)


def error_of(page: str) -> str:
    found = re.search(r'<p class="error" role="alert"[^>]*>(.*?)</p>', page, re.S)
    assert found, "no error message on the page"
    return found.group(1)


# --- what the administrator does


def test_admin_adds_an_account_with_groups(client: TestClient, data_dir: Path) -> None:
    """A new teacher with a ticked group and two typed ones can sign in; the addition is audited."""
    token = sign_in(client, "beheer")
    response = client.post("/accounts/add", data={
        "csrf": token, "name": "meester", "role": "teacher", "groups": ["groep 7"],
        "groups_other": " groep 8 ,, groep 7, groep 9", "password": NEW_PASSWORD})
    assert response.status_code == 303 and response.headers["location"] == "/accounts"
    assert users(data_dir)["meester"] == {"name": "meester", "role": "teacher", "disabled": False, "school": "default",
                                          "groups": ["groep 7", "groep 8", "groep 9"]}
    assert can_sign_in(data_dir, "meester", NEW_PASSWORD)
    assert ("beheer", "user-add", "meester") in audit(data_dir)
    assert "Account meester toegevoegd." in client.get("/accounts").text


def test_admin_changes_role_and_groups(client: TestClient, data_dir: Path) -> None:
    """Role and groups are replaced by what the form holds; back to the account's page with a message."""
    token = sign_in(client, "beheer")
    response = client.post("/accounts/change", data={"csrf": token, "name": "juf", "role": "care",
                                                     "groups": ["groep 7"], "groups_other": "groep 6"})
    assert response.headers["location"] == "/accounts/user?name=juf"
    assert users(data_dir)["juf"]["role"] == "care" and users(data_dir)["juf"]["groups"] == ["groep 6", "groep 7"]
    assert "Account juf gewijzigd." in client.get(response.headers["location"]).text
    client.post("/accounts/change", data={"csrf": token, "name": "juf", "role": "teacher"})
    assert users(data_dir)["juf"]["groups"] == [] and users(data_dir)["juf"]["role"] == "teacher"


def test_admin_disables_and_enables_an_account(client: TestClient, data_dir: Path) -> None:
    """A disabled account cannot sign in and its open session ends at once; enabling restores it."""
    with app_client(data_dir) as teacher:
        sign_in(teacher, "juf")
        assert teacher.get("/reports").status_code == 200
        token = sign_in(client, "beheer")
        client.post("/accounts/status", data={"csrf": token, "name": "juf", "disabled": "1"})
        assert users(data_dir)["juf"]["disabled"] is True
        assert teacher.get("/reports").status_code == 303  # the session no longer counts
        assert not can_sign_in(data_dir, "juf", PASSWORD)
        assert "uitgeschakeld" in client.get("/accounts").text
        client.post("/accounts/status", data={"csrf": token, "name": "juf", "disabled": "0"})
        assert users(data_dir)["juf"]["disabled"] is False and can_sign_in(data_dir, "juf", PASSWORD)


def test_admin_sets_a_new_password(client: TestClient, data_dir: Path) -> None:
    """The new password works, the old one no longer; the audit says it changed, never what it is."""
    token = sign_in(client, "beheer")
    client.post("/accounts/password", data={"csrf": token, "name": "ict", "password": NEW_PASSWORD})
    assert can_sign_in(data_dir, "ict", NEW_PASSWORD) and not can_sign_in(data_dir, "ict", PASSWORD)
    page = client.get("/accounts/audit").text
    assert "password: &#34;changed&#34;" in page and NEW_PASSWORD not in page


def test_admin_cannot_disable_themself(client: TestClient, data_dir: Path) -> None:
    """Disabling one's own account is refused with a clear message, and the account stays enabled."""
    token = sign_in(client, "beheer")
    response = client.post("/accounts/status", data={"csrf": token, "name": "beheer", "disabled": "1"})
    assert response.status_code == 400
    assert "Je kunt je eigen account niet uitschakelen" in error_of(response.text)
    assert users(data_dir)["beheer"]["disabled"] is False
    assert 'action="/accounts/status"' not in client.get("/accounts/user?name=beheer").text


def test_admin_cannot_remove_their_own_admin_role(client: TestClient, data_dir: Path) -> None:
    """Changing one's own role away from admin is refused; changing one's own groups is fine."""
    token = sign_in(client, "beheer")
    response = client.post("/accounts/change", data={"csrf": token, "name": "beheer", "role": "it"})
    assert response.status_code == 400 and "eigen beheerdersrol" in error_of(response.text)
    assert users(data_dir)["beheer"]["role"] == "admin"
    client.post("/accounts/change", data={"csrf": token, "name": "beheer", "role": "admin", "groups_other": "x"})
    assert users(data_dir)["beheer"]["groups"] == ["x"]


@pytest.mark.parametrize(("form", "message"), [
    ({"password": "kort"}, "minstens 10"),
    ({"role": "director"}, "Kies een van de rollen"),
    ({"name": "juf"}, "Er is al een account juf"),
    ({"name": "  "}, "Geef een gebruikersnaam"),
    ({"name": "a\nb"}, "Geef een gebruikersnaam"),
    ({"groups_other": "x" * 101}, "Een groepsnaam heeft hoogstens 100 tekens"),
])
def test_add_refuses_bad_input_and_keeps_the_form(client: TestClient, data_dir: Path, form: dict[str, str],
                                                  message: str) -> None:
    """Bad input: 400 with the reason on the accounts page, the typed name kept, no account added."""
    token = sign_in(client, "beheer")
    data = {"csrf": token, "name": "nieuw", "role": "teacher", "password": NEW_PASSWORD, **form}
    response = client.post("/accounts/add", data=data)
    assert response.status_code == 400 and message in error_of(response.text)
    assert set(users(data_dir)) == {"beheer", "juf", "zorg", "ict"}
    if form.get("name") is None:
        assert 'value="nieuw"' in response.text


def test_new_password_too_short_is_refused(client: TestClient, data_dir: Path) -> None:
    """A new password under 10 characters is refused; the old one still works."""
    token = sign_in(client, "beheer")
    response = client.post("/accounts/password", data={"csrf": token, "name": "ict", "password": "123456789"})
    assert response.status_code == 400 and "minstens 10" in error_of(response.text)
    assert can_sign_in(data_dir, "ict", PASSWORD)


@pytest.mark.parametrize("path", ["/accounts/change", "/accounts/status", "/accounts/password"])
def test_changing_an_unknown_account_is_404(client: TestClient, path: str) -> None:
    """A change for an account that does not exist says so (404)."""
    token = sign_in(client, "beheer")
    response = client.post(path, data={"csrf": token, "name": "niemand", "role": "it", "disabled": "1",
                                       "password": NEW_PASSWORD})
    assert response.status_code == 404 and "Er is geen account niemand" in response.text
    assert client.get("/accounts/user?name=niemand").status_code == 404


# --- who may


GETS = ["/accounts", "/accounts/user?name=juf", "/accounts/audit"]
POSTS = {
    "/accounts/add": {"name": "nieuw", "role": "admin", "password": NEW_PASSWORD},
    "/accounts/change": {"name": "juf", "role": "admin"},
    "/accounts/status": {"name": "juf", "disabled": "1"},
    "/accounts/password": {"name": "juf", "password": NEW_PASSWORD},
}


def state(data_dir: Path) -> tuple[object, ...]:
    """What an accounts form can change: the accounts, a password, and the audit rows of account changes."""
    return (users(data_dir), can_sign_in(data_dir, "juf", PASSWORD),
            [a for a in audit(data_dir) if a[1].startswith("user-")])


@pytest.mark.parametrize("account", ["juf", "zorg", "ict"])
def test_only_the_admin_reaches_accounts(client: TestClient, data_dir: Path, account: str) -> None:
    """Teacher, care and IT get 403 on every accounts page and form, with a valid CSRF token; nothing changes."""
    before = state(data_dir)
    token = sign_in(client, account)
    for path in GETS:
        assert client.get(path).status_code == 403, path
    for path, form in POSTS.items():
        assert client.post(path, data={"csrf": token, **form}).status_code == 403, path
    assert state(data_dir) == before


@pytest.mark.parametrize("path", list(POSTS))
@pytest.mark.parametrize("case", ["no session", "no csrf", "bad csrf", "wrong role"])
def test_account_forms_refuse_without_session_csrf_or_role(client: TestClient, data_dir: Path, path: str,
                                                           case: str) -> None:
    """Each accounts form refuses no session (to sign-in), a missing or wrong CSRF token and a non-admin (403)."""
    before = state(data_dir)
    form = dict(POSTS[path])
    if case == "no session":
        form["csrf"] = csrf_of(client.get("/login").text)
        response = client.post(path, data=form)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
    else:
        token = sign_in(client, "ict" if case == "wrong role" else "beheer")
        if case != "no csrf":
            form["csrf"] = token if case == "wrong role" else token[::-1]
        response = client.post(path, data=form)
        assert response.status_code == 403
    assert state(data_dir) == before


@pytest.mark.parametrize("path", GETS)
def test_account_pages_need_a_session(client: TestClient, path: str) -> None:
    """Without a session the accounts pages send to sign-in."""
    response = client.get(path)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=/accounts")


# --- the audit log


def test_audit_log_shows_time_actor_action_target_and_detail_but_no_pupil(client: TestClient,
                                                                          data_dir: Path) -> None:
    """The audit page lists staff actions; a pupil's pseudonymous id is shown as 'a pupil', never itself."""
    ids = add_pupils(data_dir, RosterRow("1001", "Anna de Vries", "groep 7"))

    async def ban(store: Store) -> None:
        await store.ban("juf", "1001", now_utc() + timedelta(hours=1), reason="Anna pestte")

    with_store(data_dir, ban)
    sign_in(client, "beheer")
    page = client.get("/accounts/audit").text
    rows = re.findall(r"<tr>(.*?)</tr>", page.split("<tbody>", 1)[1], re.S)
    cells = [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
             for row in rows]
    ban_row = next(c for c in cells if c[2] == "ban")
    assert ban_row[1] == "juf" and ban_row[3] == "een leerling" and "until" in ban_row[4]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", ban_row[0])
    assert next(c for c in cells if c[2] == "login")[1:4] == ["beheer", "login", "–"]
    assert ids["1001"] not in page and "Anna" not in page and not re.search(r"\bp-[0-9a-f]{6,}", page)


def test_audit_rows_mask_pupils_and_devices() -> None:
    """Targets p-… and d-… are masked; others stay; detail keys are sorted."""
    from zoneinfo import ZoneInfo

    rows = audit_rows([
        {"time": "2026-03-02T08:15:03.000Z", "actor": "a", "action": "ban", "target": "p-0123456789",
         "detail": {"until": "x", "id": "1"}},
        {"time": "2026-03-02T08:15:03.000Z", "actor": "a", "action": "x", "target": "d-99", "detail": {}},
        {"time": "2026-03-02T08:15:03.000Z", "actor": "a", "action": "user-add", "target": "juf", "detail": {}},
    ], ZoneInfo("Europe/Amsterdam"))
    assert [(r["target"], r["masked"]) for r in rows] == [(None, "pupil"), (None, "device"), ("juf", None)]
    assert rows[0]["time"] == "2026-03-02 09:15:03" and rows[0]["detail"] == 'id: "1", until: "x"'


# --- language


@pytest.mark.parametrize("path", GETS)
def test_english_account_pages_have_no_raw_keys(client: TestClient, path: str) -> None:
    """With lang=en the accounts pages are English and no catalogue key shows as such."""
    token = sign_in(client, "beheer")
    client.post("/accounts/password", data={"csrf": token, "name": "ict", "password": NEW_PASSWORD})
    client.cookies.set("lang", "en")
    page = client.get(path).text
    assert "Audit log" in page
    visible = re.sub(r"<[^>]+>", " ", page)
    assert not re.search(r"(^|\s)(accounts|role|common|nav|error)\.[a-z_]+", visible)
    assert not [key for key in MESSAGES if key.startswith("accounts.") and key in visible]


def test_english_error_messages_have_no_raw_keys(client: TestClient) -> None:
    """A refused change in English shows the English reason."""
    token = sign_in(client, "beheer")
    client.cookies.set("lang", "en")
    page = client.post("/accounts/status", data={"csrf": token, "name": "beheer", "disabled": "1"}).text
    assert error_of(page) == "You cannot disable your own account. Ask another administrator."
