"""Helpers of the browser tests: a school with pupils and staff, signing in, and screenshots to look at."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page
from proxy_helpers import KLASWACHT, ROOT, Parent, Running, start

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "test-output" / "screenshots"
PASSWORD = "lang-genoeg-wachtwoord"
# A Monday in a lesson (09:00 school time, no holiday) before any day this test can run on: the proxy and
# the dashboard read the timetable at this clock; grants, bans and events keep real times.
LESSON_CLOCK = "2026-11-16T09:00"

ROSTER = """leerlingnummer;roepnaam;tussenvoegsel;achternaam;groep;ip
1001;Anna;de;Vries;groep 7-8;127.0.0.1
1002;Bram;;Jansen;groep 5-6;127.0.0.2
"""
STAFF = {  # name: (role, groups)
    "juf.anouk": ("teacher", ["groep 7-8"]),
    "meester.kees": ("teacher", ["groep 5-6"]),
    "zorg.ilse": ("care", []),
    "ict.sander": ("it", []),
    "beheer.mila": ("admin", []),
}


@dataclass
class School:
    running: Running
    parent: Parent
    data_dir: Path

    @property
    def dashboard(self) -> str:
        return self.running.lines["dashboard"].rstrip("/")

    @property
    def proxy(self) -> str:
        return self.running.proxy


BOARD_ADMIN = "bestuur.kees"


def _klaswacht(data_dir: Path, *args: str, stdin: str = "") -> None:
    done = subprocess.run([KLASWACHT, *args, "--data-dir", str(data_dir)], input=stdin, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def open_school(tmp: Path, parent: Parent) -> School:
    """Roster and accounts through the real commands, then `klaswacht run` in a lesson, upstream to `parent`."""
    data_dir = tmp / "data"
    roster = tmp / "leerlingen.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    _klaswacht(data_dir, "roster", "import", str(roster))
    for name, (role, groups) in STAFF.items():
        _klaswacht(data_dir, "users", "add", name, "--role", role, *(["--groups", *groups] if groups else []),
                   stdin=PASSWORD + "\n")
    # The board's administrator (no school): its pages have a school column and field.
    _klaswacht(data_dir, "users", "add", BOARD_ADMIN, "--role", "admin", "--board", stdin=PASSWORD + "\n")
    running = start(data_dir, "--period", "auto", "--fake-clock", LESSON_CLOCK, "--upstream", parent.url)
    return School(running, parent, data_dir)


def staff_page(browser: Browser, school: School, name: str, **context: object) -> tuple[BrowserContext, Page]:
    """A fresh browser context (no cookies) signed in as `name`."""
    ctx = browser.new_context(**context)  # type: ignore[arg-type]
    page = ctx.new_page()
    page.goto(f"{school.dashboard}/login")
    page.get_by_label("Gebruikersnaam").fill(name)
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Inloggen").click()
    page.wait_for_load_state()
    assert "/login" not in page.url, f"{name} could not sign in"
    return ctx, page


def pupil_page(browser: Browser, school: School) -> tuple[BrowserContext, Page]:
    """A pupil's browser: every request through the proxy (from 127.0.0.1: Anna's device in the roster)."""
    ctx = browser.new_context(proxy={"server": school.proxy})
    return ctx, ctx.new_page()


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page under test-output/screenshots/ to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
