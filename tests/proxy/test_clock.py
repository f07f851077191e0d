"""The timetable on the clock in a real `klaswacht run` (issue 4, point 3): `--period auto` with a pinned clock.

`--fake-clock` (testing only, not in --help) starts the timetable's clock at a UTC instant; the
timetable itself is the pure `period_at` on `local_time` (Europe/Amsterdam, zoneinfo). Groups are told
apart by loopback source address (127.0.0.2, 127.0.0.3 in their subnets), so one proxy shows several
groups' periods at the same instant. The period is read from behaviour: the test policy gives each
period its own pattern of blocks (see PERIOD_OF).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from proxy_helpers import Parent, fetch_from, start

POLICY = """\
[school]
type = "primary"
default_group = "school"

[periods.lesson]
closed = ["chat"]

[periods.break]
internet = false
closed = ["chat"]

[periods.outside]
closed = []

[periods.holiday]
closed = ["social"]

[timetables.default]
days = { mon = "08:30-14:15", tue = "08:30-14:15", wed = "08:30-12:15", thu = "08:30-14:15", fri = "08:30-12:15" }
breaks = ["10:15-10:30"]

[timetables.sunday]
days = { sun = "03:00-12:00" }

[timetables.sunday-break]
days = { sun = "03:00-12:00" }
breaks = ["03:15-03:45"]

[timetables.late]
days = { mon = "10:00-16:00" }

[timetables.later]
days = { mon = "11:00-16:00" }

[[holidays]]
name = "Kerstvakantie"
first = 2026-12-19
last = 2027-01-03

[[groups]]
name = "school"

[[groups]]
name = "two"
subnets = ["127.0.0.2/32"]
timetable = "{two}"

[[groups]]
name = "three"
subnets = ["127.0.0.3/32"]
timetable = "{three}"
"""

# (discord: chat, instagram: social, an ordinary site) -> the period that answers so.
PERIOD_OF = {(403, 200, 200): "lesson", (403, 403, 403): "break", (200, 200, 200): "outside",
             (200, 403, 200): "holiday"}
PROBES = ("http://discord.com/", "http://www.instagram.com/", "http://www.speelgoedwinkel.nl/")


def period_seen(proxy: str, source: str) -> str:
    codes = tuple(fetch_from(proxy, url, source)[0] for url in PROBES)
    return PERIOD_OF.get(codes, f"unknown {codes}")


@pytest.mark.parametrize(("clock", "two", "three", "expected"), [
    # The last Sunday of March, 01:20 UTC = 03:20 CEST (the clocks went from 02:00 to 03:00 at 01:00 UTC).
    # Read as CET (02:20) the Sunday groups would be outside school; the default group has no Sundays.
    ("2026-03-29T01:20:00+00:00", "sunday", "sunday-break",
     {"127.0.0.1": "outside", "127.0.0.2": "lesson", "127.0.0.3": "break"}),
    # The Monday after the last Sunday of October, 09:20 UTC = 10:20 CET: the default group's break.
    # Read as CEST (11:20) it would be a lesson, and group three (from 11:00) would be in school.
    ("2026-10-26T09:20:00Z", "late", "later",
     {"127.0.0.1": "break", "127.0.0.2": "lesson", "127.0.0.3": "outside"}),
    # A weekday in the Christmas holiday, local time without offset: holiday for every group.
    ("2026-12-21T10:20", "late", "later",
     {"127.0.0.1": "holiday", "127.0.0.2": "holiday", "127.0.0.3": "holiday"}),
])
def test_auto_period_follows_the_timetable_on_the_school_clock(tmp_path: Path, parent: Parent, clock: str, two: str,
                                                                three: str, expected: dict[str, str]) -> None:
    """Lesson, break, outside (weekend, before school) and holiday per group, daylight saving correct."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.replace("{two}", two).replace("{three}", three), encoding="utf-8")
    running = start(tmp_path / "data", "--policy", str(policy), "--period", "auto", "--fake-clock", clock,
                    "--upstream", parent.url)
    try:
        assert {source: period_seen(running.proxy, source) for source in expected} == expected
    finally:
        running.stop()


def test_a_pinned_period_wins_over_the_clock(tmp_path: Path, parent: Parent) -> None:
    """`--period lesson` at a holiday instant: a lesson all the same (for a demo, a test or an emergency)."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.replace("{two}", "late").replace("{three}", "later"), encoding="utf-8")
    running = start(tmp_path / "data", "--policy", str(policy), "--period", "lesson",
                    "--fake-clock", "2026-12-21T10:20", "--upstream", parent.url)
    try:
        assert period_seen(running.proxy, "127.0.0.1") == "lesson"
    finally:
        running.stop()
