"""Every main page, for every role, on a classroom laptop and on a phone: labelled controls, one h1,
AA contrast, nothing wider than the screen; screenshots saved under test-output/screenshots/ to look at."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import School, screenshot, staff_page
from playwright.sync_api import Browser

CHECKS = (Path(__file__).parent / "a11y.js").read_text(encoding="utf-8")
PAGES = {
    "juf.anouk": ["/", "/lesson", "/reports"],
    "zorg.ilse": ["/", "/reports"],
    "ict.sander": ["/it", "/it/explain?q=https%3A%2F%2Fwww.tiktok.com%2F", "/reports"],
    "beheer.mila": ["/accounts", "/accounts/audit"],
    "bestuur.kees": ["/accounts", "/accounts/audit", "/reports"],  # the board's: per school
}
SCREENS = {"laptop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}


@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize("name", PAGES)
def test_main_pages_are_accessible(browser: Browser, school: School, name: str, screen: str) -> None:
    """No unlabelled control, no text below AA contrast, one h1, no sideways scrolling, status 200."""
    ctx, page = staff_page(browser, school, name, viewport=SCREENS[screen])
    found: dict[str, list[str]] = {}
    for path in PAGES[name]:
        response = page.goto(school.dashboard + path)
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("load")  # not "networkidle": the live list keeps its event stream open
        problems = page.evaluate(CHECKS)
        if problems:
            found[path] = problems
        slug = path.strip("/").split("?")[0].replace("/", "-") or "feed"
        screenshot(page, f"{screen}-{name.split('.')[0]}-{slug}")
    ctx.close()
    assert not found, found
