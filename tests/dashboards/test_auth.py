"""Signing in and out, sessions, CSRF, the sign-in throttle and the headers, through the real app and store."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from dashboards.app import create_app
from dashboards.config import DashboardConfig
from dashboards.security import LoginThrottle
from klaswacht.store import Store

PASSWORD = "een-goed-wachtwoord"


def _accounts(data_dir: Path) -> None:
    async def main() -> None:
        async with Store(data_dir) as store:
            await store.add_user("cli", "juf", "teacher", PASSWORD, ["groep 7"])
            await store.add_user("cli", "ict", "it", PASSWORD)
    asyncio.run(main())


def _audit(data_dir: Path) -> list[tuple[str, str]]:
    async def main() -> list[tuple[str, str]]:
        async with Store(data_dir) as store:
            return [(row["actor"], row["action"]) for row in await store.audit_log()]
    return asyncio.run(main())


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    _accounts(tmp_path)
    with TestClient(create_app(DashboardConfig(data_dir=tmp_path, login_failures=3)),
                    follow_redirects=False) as c:
        yield c


def sign_in(client: TestClient, name: str = "juf", password: str = PASSWORD, next_: str = "") -> int:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"csrf": token, "name": name, "password": password, "next": next_}).status_code


def test_pages_need_a_session_and_send_to_sign_in_with_the_way_back(client: TestClient) -> None:
    """Without a session a page redirects to /login?next=<the page>."""
    response = client.get("/lesson")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/lesson"


def test_sign_in_sets_a_new_session_and_goes_to_next(client: TestClient, tmp_path: Path) -> None:
    """A right password replaces the session cookie (no fixation), follows `next` and is audited."""
    client.get("/login")
    before = client.cookies.get("klaswacht")
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"csrf": token, "name": "juf", "password": PASSWORD, "next": "/lesson"})
    assert response.status_code == 303 and response.headers["location"] == "/lesson"
    assert client.cookies.get("klaswacht") not in (None, before)
    assert ("juf", "login") in _audit(tmp_path)


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
def test_next_never_leads_to_another_site(client: TestClient, target: str) -> None:
    """An off-site `next` is ignored: the role's home page instead (no open redirect)."""
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"csrf": token, "name": "juf", "password": PASSWORD, "next": target})
    assert response.headers["location"] == "/"


def test_session_cookie_is_httponly_and_samesite_strict(client: TestClient) -> None:
    """The session cookie cannot be read by scripts nor sent by another site's form."""
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"csrf": token, "name": "juf", "password": PASSWORD})
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_secure_cookies_when_configured(tmp_path: Path) -> None:
    """Behind HTTPS (`secure_cookies`) the session cookie says Secure."""
    _accounts(tmp_path)
    with TestClient(create_app(DashboardConfig(data_dir=tmp_path, secure_cookies=True)), base_url="https://school",
                    follow_redirects=False) as c:
        token = csrf_of(c.get("/login").text)
        response = c.post("/login", data={"csrf": token, "name": "juf", "password": PASSWORD})
        assert "secure" in response.headers["set-cookie"].lower()


def test_sign_in_without_csrf_token_is_refused(client: TestClient) -> None:
    """A sign-in form from elsewhere (no token of this session) does not sign in."""
    client.get("/login")
    response = client.post("/login", data={"name": "juf", "password": PASSWORD})
    assert response.status_code == 403
    assert client.get("/lesson").status_code == 303


def test_wrong_password_and_unknown_name_look_the_same(client: TestClient) -> None:
    """Both answer 401 with the same message: the page does not tell which names exist."""
    token = csrf_of(client.get("/login").text)
    wrong = client.post("/login", data={"csrf": token, "name": "juf", "password": "fout"})
    unknown = client.post("/login", data={"csrf": token, "name": "niemand", "password": "fout"})
    assert wrong.status_code == unknown.status_code == 401
    assert "Naam of wachtwoord klopt niet." in wrong.text and "Naam of wachtwoord klopt niet." in unknown.text


def test_throttle_refuses_even_the_right_password_after_too_many_failures(client: TestClient) -> None:
    """After 3 wrong passwords for a name, the right one gets 429 too, with the minutes to wait."""
    for _ in range(3):
        assert sign_in(client, password="fout") == 401
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"csrf": token, "name": "juf", "password": PASSWORD})
    assert response.status_code == 429 and "minuten" in response.text
    assert client.get("/lesson").status_code == 303


def test_throttle_counts_per_address_across_names(client: TestClient) -> None:
    """Guessing different names from one address is throttled as well."""
    for n in range(3):
        assert sign_in(client, name=f"gok{n}", password="fout") == 401
    assert sign_in(client, name="ict") == 429


def test_throttle_window_slides() -> None:
    """Failures older than the window no longer count; a success clears the name's failures."""
    now = [0.0]
    throttle = LoginThrottle(2, 60.0, clock=lambda: now[0])
    throttle.failed("name:a", "addr:x")
    throttle.failed("name:a", "addr:x")
    assert throttle.wait("name:a") == pytest.approx(60.0)
    now[0] = 30.0
    assert throttle.wait("addr:x") == pytest.approx(30.0)
    now[0] = 61.0
    assert throttle.wait("name:a", "addr:x") == 0.0
    throttle.failed("name:b")
    throttle.succeeded("name:b")
    throttle.failed("name:b")
    assert throttle.wait("name:b") == 0.0


def test_sign_out_needs_post_with_token_and_ends_the_session(client: TestClient, tmp_path: Path) -> None:
    """Sign-out is a POST with the CSRF token; a forged one leaves the session alone; it is audited."""
    assert sign_in(client) == 303
    assert client.post("/logout", data={"csrf": "vals"}).status_code == 403
    page = client.get("/lesson")
    assert page.status_code != 303  # still signed in
    token = csrf_of(client.get("/login", follow_redirects=True).text)
    assert client.post("/logout", data={"csrf": token}).headers["location"] == "/login"
    assert client.get("/lesson").status_code == 303
    assert ("juf", "logout") in _audit(tmp_path)


def test_disabled_account_loses_its_session_at_once(client: TestClient, tmp_path: Path) -> None:
    """An account disabled while signed in is signed out at its next request."""
    assert sign_in(client) == 303

    async def disable() -> None:
        async with Store(tmp_path) as store:
            assert await store.update_user("beheer", "juf", disabled=True)
    asyncio.run(disable())
    assert client.get("/lesson").headers["location"] == "/login?next=/lesson"
    assert sign_in(client) == 401


def test_every_page_carries_the_security_headers(client: TestClient) -> None:
    """CSP without inline script, no framing, no sniffing, no referrer; pages are not cached."""
    response = client.get("/login")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "no-store" not in client.get("/static/style.css").headers.get("cache-control", "")


def test_language_switch_sets_a_cookie_and_ignores_unknown_languages(client: TestClient) -> None:
    """/taal/en turns the pages English; /taal/xx changes nothing; both go back to a local page."""
    response = client.get("/taal/en?next=/login")
    assert response.headers["location"] == "/login" and "lang=en" in response.headers["set-cookie"]
    page = client.get("/login")
    assert '<html lang="en">' in page.text and "Sign in" in page.text
    assert "set-cookie" not in client.get("/taal/xx?next=https://evil.example/").headers
    assert client.get("/taal/xx?next=https://evil.example/").headers["location"] == "/"


def test_first_start_says_how_to_make_an_account(tmp_path: Path) -> None:
    """With no accounts at all, the sign-in page names the command that makes the first one."""
    with TestClient(create_app(DashboardConfig(data_dir=tmp_path))) as c:
        assert "klaswacht users add" in c.get("/login").text
    _accounts(tmp_path)
    with TestClient(create_app(DashboardConfig(data_dir=tmp_path))) as c:
        assert "klaswacht users add" not in c.get("/login").text


def test_unknown_page_is_a_friendly_404(client: TestClient) -> None:
    """An unknown address gets the dashboard's own page with status 404."""
    response = client.get("/bestaat-niet")
    assert response.status_code == 404 and "Deze pagina bestaat niet." in response.text


def test_a_locked_database_gives_a_clear_page_and_the_dashboard_recovers(tmp_path: Path) -> None:
    """With the database locked by another process at start, pages say so (503); unlocked, sign-in works."""
    import sqlite3

    _accounts(tmp_path)
    lock = sqlite3.connect(tmp_path / "klaswacht.db", timeout=1)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        with TestClient(create_app(DashboardConfig(data_dir=tmp_path)), follow_redirects=False) as c:
            page = c.get("/login")
            assert page.status_code == 503 and "De database is even niet bereikbaar" in page.text
            lock.rollback()
            assert sign_in(c) == 303
            assert c.get("/lesson").status_code == 200
    finally:
        lock.close()


def test_a_copied_session_cookie_is_worthless_after_sign_out(client: TestClient) -> None:
    """Signing out ends the session everywhere: a copy of its cookie taken before no longer opens a page."""
    assert sign_in(client) == 303
    copied = client.cookies.get("klaswacht")
    token = csrf_of(client.get("/lesson").text)
    assert client.post("/logout", data={"csrf": token}).status_code == 303
    client.cookies.set("klaswacht", copied)
    assert client.get("/lesson").headers["location"] == "/login?next=/lesson"


def test_a_new_password_ends_the_sessions_of_before(client: TestClient, tmp_path: Path) -> None:
    """After a new password (or another role or groups) the account signs in anew."""
    assert sign_in(client) == 303
    assert client.get("/lesson").status_code == 200

    async def change() -> None:
        async with Store(tmp_path) as store:
            assert await store.update_user("beheer", "juf", password="een-ander-wachtwoord")
    asyncio.run(change())
    assert client.get("/lesson").status_code == 303
    assert sign_in(client, password="een-ander-wachtwoord") == 303


def test_attempts_sent_at_once_are_throttled_too(tmp_path: Path) -> None:
    """Wrong passwords sent in parallel cannot all be checked before the limit counts them."""
    from concurrent.futures import ThreadPoolExecutor

    _accounts(tmp_path)
    with TestClient(create_app(DashboardConfig(data_dir=tmp_path, login_failures=3)),
                    follow_redirects=False) as c:
        token = csrf_of(c.get("/login").text)
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: c.post("/login", data={"csrf": token, "name": "juf",
                                                                   "password": "fout"}).status_code, range(12)))
    assert codes.count(401) <= 3 and codes.count(429) >= 9


def test_an_unknown_name_costs_a_password_check_as_well(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that is no account is checked against a stand-in hash: the answer takes as long as a wrong password."""
    _accounts(tmp_path)
    checked: list[str] = []

    class Counting:
        def __init__(self, hasher: object) -> None:
            self.hasher = hasher

        def hash(self, password: str) -> str:
            return self.hasher.hash(password)  # type: ignore[attr-defined,no-any-return]

        def verify(self, hashed: str, password: str) -> bool:
            checked.append(password)
            return self.hasher.verify(hashed, password)  # type: ignore[attr-defined,no-any-return]

    async def main() -> None:
        async with Store(tmp_path) as store:
            monkeypatch.setattr(store, "_hasher", Counting(store._hasher))
            assert await store.verify_user("niemand", "geheim") is None
            assert await store.verify_user("juf", "fout") is None
    asyncio.run(main())
    assert checked == ["geheim", "fout"]


def test_behind_a_trusted_proxy_the_throttle_counts_each_staff_address(tmp_path: Path) -> None:
    """With --trusted-proxy, X-Forwarded-For names the address: one guesser does not lock out the others."""
    import json
    import subprocess
    import sys
    import urllib.error
    import urllib.parse
    import urllib.request
    from http.cookiejar import CookieJar

    _accounts(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "dashboards.serve", "--data-dir", str(tmp_path), "--port", "0",
                                "--trusted-proxy", "127.0.0.1"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        host, port = json.loads(process.stdout.readline())["dashboard"]
        base = f"http://{host}:{port}"

        def attempt(address: str, name: str) -> int:
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
            with opener.open(base + "/login", timeout=10) as page:
                token = csrf_of(page.read().decode())
            data = urllib.parse.urlencode({"csrf": token, "name": name, "password": "fout"}).encode()
            request = urllib.request.Request(base + "/login", data=data, headers={"X-Forwarded-For": address})
            try:
                with opener.open(request, timeout=10) as answer:
                    return answer.status
            except urllib.error.HTTPError as e:
                return e.code

        assert [attempt("10.0.0.1", f"gok{n}") for n in range(5)] == [401] * 5
        assert attempt("10.0.0.1", "gok5") == 429  # the guesser's address is throttled...
        assert attempt("10.0.0.2", "juf") == 401  # ...a teacher elsewhere is not
    finally:
        process.terminate()
        process.communicate(timeout=10)  # also closes the pipe
