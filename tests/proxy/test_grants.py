"""Grants and bans made with `klaswacht grant` / `klaswacht ban` while `klaswacht run` runs (issue 4, point 4).

The proxy reads them from the store's snapshot, refreshed about every second: a teacher's action is
in force within 2 seconds, without a restart.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from proxy_helpers import KLASWACHT, Parent, Running, fetch, fetch_from, start, until

# A teacher's action must be in force within this many seconds after the command returns.
IN_FORCE = 2.0
# The pupil of the ban test uses this loopback source address; other requests come from 127.0.0.1.
PUPIL_ADDRESS = "127.0.0.5"


def klaswacht(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KLASWACHT, *args], capture_output=True, text=True, timeout=60, check=True)


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory, parent: Parent) -> Iterator[Running]:
    """Primary policy in a lesson, with a roster that puts pupil 1001 (groep 7-8) on 127.0.0.5."""
    data = tmp_path_factory.mktemp("grants")
    roster = data / "roster.csv"
    roster.write_text(f"leerlingnummer;naam;groep;apparaat\n1001;Sanne de Vries;groep 7-8;{PUPIL_ADDRESS}\n",
                      encoding="utf-8")
    klaswacht("roster", "import", str(roster), "--data-dir", str(data))
    running = start(data, "--period", "lesson", "--upstream", parent.url)
    yield running
    if running.process.poll() is None:
        running.stop()


def test_a_grant_opens_social_media_for_the_group_within_two_seconds(lesson: Running, parent: Parent) -> None:
    """`klaswacht grant school social` opens Instagram for the default group in the running proxy within 2 s."""
    assert fetch(lesson.proxy, "http://www.instagram.com/")[0] == 403
    klaswacht("grant", "school", "social", "--minutes", "5", "--data-dir", str(lesson.data_dir))
    took = until(lambda: fetch(lesson.proxy, "http://www.instagram.com/")[0] == 200, IN_FORCE)
    assert took is not None, "the grant was not in force within 2 seconds"
    assert parent.urls()[-1] == "http://www.instagram.com/"
    # The grant is for the group: the pupil of groep 7-8 still gets the block page; chat stays closed.
    assert fetch_from(lesson.proxy, "http://www.instagram.com/", PUPIL_ADDRESS)[0] == 403
    assert fetch(lesson.proxy, "http://discord.com/")[0] == 403


def test_a_grant_never_opens_a_never_open_category(lesson: Running) -> None:
    """A grant of `adult` is stored but never opens it: never_open wins over any teacher."""
    klaswacht("grant", "school", "adult", "--minutes", "5", "--data-dir", str(lesson.data_dir))
    klaswacht("grant", "school", "pornhub.com", "--minutes", "5", "--data-dir", str(lesson.data_dir))
    assert until(lambda: fetch(lesson.proxy, "http://www.pornhub.com/")[0] != 403, IN_FORCE + 1) is None


def test_a_ban_blocks_everything_but_the_allow_list_and_the_report_page(lesson: Running, parent: Parent) -> None:
    """A ban of pupil 1001 (on 127.0.0.5) blocks an ordinary site with the ban text; school tools and the
    report page stay reachable; other pupils are not affected; the event names the pupil pseudonymously."""
    site = "http://www.speelgoedwinkel.nl/"
    assert fetch_from(lesson.proxy, site, PUPIL_ADDRESS)[0] == 200
    ends = (datetime.now().astimezone() + timedelta(hours=1)).isoformat(timespec="minutes")
    klaswacht("ban", "1001", "--until", ends, "--reason", "test", "--data-dir", str(lesson.data_dir))
    took = until(lambda: fetch_from(lesson.proxy, site, PUPIL_ADDRESS)[0] == 403, IN_FORCE)
    assert took is not None, "the ban was not in force within 2 seconds"
    status, body = fetch_from(lesson.proxy, site, PUPIL_ADDRESS)
    assert status == 403 and "Je mag even niet op internet." in body
    # the allow list and the report page, even in a ban
    assert fetch_from(lesson.proxy, "http://accounts.magister.net/login", PUPIL_ADDRESS)[0] == 200
    assert parent.urls()[-1] == "http://accounts.magister.net/login"
    status, body = fetch_from(lesson.proxy, site.rstrip("/") + "/.klaswacht/meld", PUPIL_ADDRESS,
                              data=b"rule=ban")
    assert status == 200 and "Dank je wel" in body
    # another device is not banned
    assert fetch(lesson.proxy, site)[0] == 200


def test_the_ban_event_names_the_pupil_only_by_pseudonym(lesson: Running) -> None:
    """The stored ban block has the pupil's p-id and group; the name from the roster never leaves the store."""
    fetch_from(lesson.proxy, "http://www.speelgoedwinkel.nl/", PUPIL_ADDRESS)
    lesson.stop()
    result = klaswacht("events", "--data-dir", str(lesson.data_dir))
    events = [json.loads(line) for line in result.stdout.splitlines()]
    bans = [e for e in events if e["rule"] == "ban"]
    assert bans and all(e["client"].startswith("p-") and e["group"] == "groep 7-8" for e in bans)
    assert "Sanne" not in result.stdout and "1001" not in result.stdout
    assert "Sanne" not in lesson.stderr

