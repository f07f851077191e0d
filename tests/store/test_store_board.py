"""A school board end to end (issue 7, point 5): two `klaswacht run` gateways of two schools (one by its
policy's `[school] id`, one by `--school` beside a policy that names no school, as a board's bundle does)
write into one PostgreSQL database; one dashboard shows each school's staff only their own school, and a
grant of one school is not applied by the other school's gateway."""

from __future__ import annotations

import asyncio
import http.cookiejar
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from postgres_server import Cluster

from klaswacht.loading import DEFAULT_POLICY
from klaswacht.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "proxy"))
from proxy_helpers import Running, fetch, klaswacht, make_parent, start, until

pytestmark = [pytest.mark.postgresql_only, pytest.mark.slow]
PASSWORD = "een-goed-wachtwoord"
GROUP = "school"  # the shipped primary policy's default group: a device no roster or subnet names


def _policy(tmp: Path, school: str) -> Path:
    """The shipped primary policy with `[school] id = school`."""
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    path = tmp / f"{school}.toml"
    path.write_text(text.replace("[school]\n", f'[school]\nid = "{school}"\n', 1), encoding="utf-8")
    return path


def _live_list(dashboard: str, name: str) -> str:
    """The live list as `name` sees it after signing in (a browser of its own: a cookie jar)."""
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with browser.open(dashboard + "login", timeout=20) as response:
        token = re.search(r'name="csrf" value="([^"]+)"', response.read().decode())
    assert token
    form = urllib.parse.urlencode({"csrf": token.group(1), "name": name, "password": PASSWORD}).encode()
    with browser.open(dashboard + "login", data=form, timeout=20) as response:  # follows the redirect to /
        assert response.url == dashboard, response.url
        return str(response.read().decode())


def _events(url: str, school: str, data_dir: Path) -> list[dict[str, object]]:
    async def main() -> list[dict[str, object]]:
        store = await Store(data_dir, database_url=url, school=school).open(background=False)
        try:
            return [e async for e in store.events()]
        finally:
            await store.close()

    return asyncio.run(main())


def test_two_gateways_write_one_database_and_one_dashboard_keeps_schools_apart(
        tmp_path: Path, postgres: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Gateway noord blocks "kankerjuf", gateway zuid "porno kijken"; both land in the one database under their
    school. On noord's dashboard, noord's teacher sees only noord's block and zuid's teacher only zuid's. A
    chat grant for noord's group opens chat at noord's gateway only: zuid's gateway still blocks it."""
    parent = make_parent()
    with postgres.database() as url:
        monkeypatch.delenv("KLASWACHT_DATABASE", raising=False)
        noord, zuid = tmp_path / "noord", tmp_path / "zuid"
        # Accounts from the command line, one per school (the password is read from stdin).
        for school, data in (("noord", noord), ("zuid", zuid)):
            result = subprocess.run(
                [str(Path(sys.executable).parent / "klaswacht"), "users", "add", f"juf-{school}", "--role",
                 "teacher", "--groups", GROUP, "--school", school, "--data-dir", str(data), "--database", url],
                input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False)
            assert result.returncode == 0, result.stderr
        # Every gateway of a board shares the key of the pseudonymous ids.
        shutil.copy(noord / "secret.key", zuid / "secret.key")
        gateways: dict[str, Running] = {}
        try:
            common = ("--period", "lesson", "--database", url, "--upstream", parent.url)
            gateways["noord"] = start(noord, *common, "--policy", str(_policy(tmp_path, "noord")))
            gateways["zuid"] = start(zuid, *common, "--policy", str(DEFAULT_POLICY), "--school", "zuid")
            status, _ = fetch(gateways["noord"].proxy, "http://www.google.com/search?q=kankerjuf")
            assert status == 403
            status, _ = fetch(gateways["zuid"].proxy, "http://www.google.com/search?q=porno+kijken")
            assert status == 403
            assert until(lambda: len(_events(url, "noord", noord)) == 1 and len(_events(url, "zuid", zuid)) == 1, 10)
            assert [e["terms"] for e in _events(url, "noord", noord)] == [["kankerjuf"]]
            assert [e["terms"] for e in _events(url, "zuid", zuid)] == [["porno", "kijken"]]

            dashboard = gateways["noord"].lines["dashboard"]
            page = _live_list(dashboard, "juf-noord")
            assert "kankerjuf" in page and "porno" not in page
            page = _live_list(dashboard, "juf-zuid")
            assert "porno" in page and "kankerjuf" not in page

            # A grant for noord's group "school": noord's gateway opens chat within 2 s, zuid's never does.
            klaswacht("grant", GROUP, "chat", "--minutes", "30", "--school", "noord", "--data-dir", str(noord),
                      "--database", url)
            assert until(lambda: fetch(gateways["noord"].proxy, "http://web.whatsapp.com/")[0] == 200, 5)
            assert fetch(gateways["zuid"].proxy, "http://web.whatsapp.com/")[0] == 403
            assert parent.urls().count("http://web.whatsapp.com/") >= 1
        finally:
            for running in gateways.values():
                assert running.stop() == 0, running.stderr
        assert not (noord / "klaswacht.db").exists() and not (zuid / "klaswacht.db").exists()


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_bad_school_id_stops_klaswacht_run_before_it_starts(tmp_path: Path, how: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`klaswacht run --school` or $KLASWACHT_SCHOOL that is not a slug: exit 2 with the reason, nothing started."""
    extra: list[str] = []
    if how == "option":
        extra = ["--school", "De Regenboog"]
    else:
        monkeypatch.setenv("KLASWACHT_SCHOOL", "De Regenboog")
    result = subprocess.run([str(Path(sys.executable).parent / "klaswacht"), "run", "--data-dir", str(tmp_path),
                             "--proxy-port", "0", "--dashboard-port", "0", "--metrics-port", "0", *extra],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "not a school id" in result.stderr and result.stdout == ""
