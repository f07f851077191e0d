"""Fixtures of the browser tests: Debian's chromium driven by Playwright, and a running school.

The school is a real `klaswacht run` (proxy and dashboard processes, a real SQLite store) with a roster,
staff accounts made with the real commands, and a loopback parent proxy standing in for the internet.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proxy"))  # proxy_helpers: start, fetch, parent

from browser_helpers import CHROMIUM, School, open_school
from proxy_helpers import make_parent


# Per module, not per session: Playwright's sync API keeps an event loop running in this thread while
# it is open, and the tests after these ones call asyncio.run().
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"these tests drive Debian's chromium at {CHROMIUM}: install it with `apt-get install chromium` "
                    "(.ci/run does); Playwright's own browser download cannot work without internet")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # The flags keep chromium off the closed network (no background fetches, no QUIC) and let it run as root.
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"])
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[School]:
    parent = make_parent()
    school = open_school(tmp_path_factory.mktemp("school"), parent)
    yield school
    school.running.stop()
    parent.server.shutdown()
    parent.server.server_close()
