"""Signing in and out in a real browser: keyboard only, the language switch, wrong passwords, and roles."""

from __future__ import annotations

from browser_helpers import PASSWORD, School, screenshot, staff_page
from playwright.sync_api import Browser, expect


def test_sign_in_by_keyboard_only_and_out_again(browser: Browser, school: School) -> None:
    """A teacher signs in with Tab and Enter alone, lands on the live list, and signs out."""
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(f"{school.dashboard}/")
    assert page.url.endswith("/login?next=/")
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    screenshot(page, "login")
    expect(page.get_by_label("Gebruikersnaam")).to_be_focused()  # the form is ready to type in
    page.keyboard.type("juf.anouk")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{school.dashboard}/")
    expect(page.get_by_text("Ingelogd als juf.anouk")).to_be_visible()
    page.get_by_role("button", name="Uitloggen").click()
    page.wait_for_url("**/login")
    expect(page.get_by_role("status")).to_have_text("Je bent uitgelogd.")
    page.goto(f"{school.dashboard}/")
    assert "/login" in page.url  # the session is gone
    ctx.close()


def test_wrong_password_is_refused_and_the_form_keeps_the_name(browser: Browser, school: School) -> None:
    """A wrong password shows an alert, signs nobody in, and keeps the name typed."""
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(f"{school.dashboard}/login")
    page.get_by_label("Gebruikersnaam").fill("meester.kees")
    page.get_by_label("Wachtwoord").fill("niet-het-wachtwoord")
    page.get_by_role("button", name="Inloggen").click()
    expect(page.get_by_role("alert")).to_have_text("Naam of wachtwoord klopt niet.")
    expect(page.get_by_label("Gebruikersnaam")).to_have_value("meester.kees")
    page.goto(f"{school.dashboard}/")
    assert "/login" in page.url
    ctx.close()


def test_english_switch_keeps_the_page_and_translates_it(browser: Browser, school: School) -> None:
    """The language link turns the page English (lang="en") and back, on the page it was used on."""
    ctx, page = staff_page(browser, school, "juf.anouk")
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.get_by_role("link", name="Nederlands").click()
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    ctx.close()


def test_it_lands_on_its_tools_and_cannot_open_the_live_list_of_pupils(browser: Browser, school: School) -> None:
    """IT signs in to its own tools; the navigation offers no live list, and the accounts page is refused."""
    ctx, page = staff_page(browser, school, "ict.sander")
    assert page.url.endswith("/it")
    expect(page.get_by_role("navigation").get_by_role("link", name="Meldingen")).to_have_count(0)
    response = page.goto(f"{school.dashboard}/accounts")
    assert response is not None and response.status == 403
    ctx.close()
