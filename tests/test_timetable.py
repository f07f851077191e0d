"""filters.timetable: which period it is for a group at a local wall-clock time."""

from __future__ import annotations

import dataclasses
from datetime import datetime, time

import pytest

from filters.policy import Policy, parse_policy
from filters.timetable import period_at, period_end, whole_minutes


@pytest.mark.parametrize(("group", "when", "expected"), [
    # the default timetable: Monday 2026-11-23, school day 08:30-14:15, breaks 10:15-10:30 and 12:00-12:45
    ("school", datetime(2026, 11, 23, 9, 0), "lesson"),
    ("school", datetime(2026, 11, 23, 8, 30), "lesson"),  # the day starts at its first minute
    ("school", datetime(2026, 11, 23, 8, 29, 59), "outside"),
    ("school", datetime(2026, 11, 23, 10, 15), "break"),
    ("school", datetime(2026, 11, 23, 10, 29), "break"),
    ("school", datetime(2026, 11, 23, 10, 30), "lesson"),  # a break ends before its last minute
    ("school", datetime(2026, 11, 23, 12, 30), "break"),
    ("school", datetime(2026, 11, 23, 14, 14, 59), "lesson"),
    ("school", datetime(2026, 11, 23, 14, 15), "outside"),
    ("school", datetime(2026, 11, 23, 19, 0), "outside"),
    ("school", datetime(2026, 11, 23, 0, 0), "outside"),
    # Wednesday is a short day
    ("school", datetime(2026, 11, 25, 12, 10), "break"),
    ("school", datetime(2026, 11, 25, 13, 0), "outside"),
    # weekend
    ("school", datetime(2026, 11, 28, 10, 0), "outside"),
    ("school", datetime(2026, 11, 29, 10, 0), "outside"),
    # holidays, first and last day included, whatever the hour
    ("school", datetime(2026, 12, 18, 10, 0), "lesson"),
    ("school", datetime(2026, 12, 19, 10, 0), "holiday"),
    ("school", datetime(2026, 12, 22, 10, 20), "holiday"),
    ("school", datetime(2027, 1, 3, 23, 59), "holiday"),
    ("school", datetime(2027, 1, 4, 10, 20), "break"),
    # a group with its own timetable: Mondays only, 08:30-12:00, break 10:00-10:15
    ("groep 3", datetime(2026, 11, 23, 10, 5), "break"),
    ("groep 3", datetime(2026, 11, 23, 10, 20), "lesson"),
    ("groep 3", datetime(2026, 11, 23, 12, 30), "outside"),
    ("groep 3", datetime(2026, 11, 24, 10, 0), "outside"),
    ("groep 3", datetime(2026, 12, 21, 10, 20), "holiday"),
    # an unknown group follows the default timetable
    ("groep 9", datetime(2026, 11, 23, 10, 5), "lesson"),
    ("groep 9", datetime(2026, 11, 23, 10, 20), "break"),
])
def test_period_at(policy: Policy, group: str, when: datetime, expected: str) -> None:
    """Lesson, break, outside school hours, weekend and holiday follow the group's timetable."""
    assert period_at(policy, group, when) == expected


@pytest.mark.parametrize(("group", "when", "expected"), [
    # a lesson ends when the next break starts (Monday 2026-11-23: breaks 10:15-10:30 and 12:00-12:45)
    ("school", datetime(2026, 11, 23, 8, 30), datetime(2026, 11, 23, 10, 15)),
    ("school", datetime(2026, 11, 23, 10, 14, 59), datetime(2026, 11, 23, 10, 15)),
    ("school", datetime(2026, 11, 23, 10, 30), datetime(2026, 11, 23, 12, 0)),
    # the last lesson ends with the school day
    ("school", datetime(2026, 11, 23, 12, 45), datetime(2026, 11, 23, 14, 15)),
    ("school", datetime(2026, 11, 23, 14, 14, 59), datetime(2026, 11, 23, 14, 15)),
    # a break ends at its end
    ("school", datetime(2026, 11, 23, 10, 15), datetime(2026, 11, 23, 10, 30)),
    ("school", datetime(2026, 11, 23, 12, 30), datetime(2026, 11, 23, 12, 45)),
    # Wednesday's school day ends inside the lunch break: the break ends with the day
    ("school", datetime(2026, 11, 25, 11, 0), datetime(2026, 11, 25, 12, 0)),
    ("school", datetime(2026, 11, 25, 12, 10), datetime(2026, 11, 25, 12, 15)),
    # a group with its own timetable: Mondays 08:30-12:00, break 10:00-10:15
    ("groep 3", datetime(2026, 11, 23, 10, 5), datetime(2026, 11, 23, 10, 15)),
    ("groep 3", datetime(2026, 11, 23, 10, 15), datetime(2026, 11, 23, 12, 0)),
    # no lesson and no break: nothing to end
    ("school", datetime(2026, 11, 23, 8, 29, 59), None),
    ("school", datetime(2026, 11, 23, 14, 15), None),
    ("school", datetime(2026, 11, 28, 10, 0), None),  # Saturday
    ("school", datetime(2026, 12, 22, 10, 0), None),  # holiday
    ("groep 3", datetime(2026, 11, 24, 10, 0), None),  # not this group's day
])
def test_period_end(policy: Policy, group: str, when: datetime, expected: datetime | None) -> None:
    """A lesson ends at the next break or the end of the day, a break at its end; outside school, None."""
    assert period_end(policy, group, when) == expected


CHAINED = """\
[timetables.default]
days = { mon = "08:00-12:00" }
breaks = ["10:00-10:15", "10:15-10:30", "10:20-10:40", "09:00-09:10"]
"""


@pytest.mark.parametrize(("when", "expected"), [
    (datetime(2026, 11, 23, 9, 5), datetime(2026, 11, 23, 9, 10)),
    (datetime(2026, 11, 23, 9, 30), datetime(2026, 11, 23, 10, 0)),  # breaks need not be written in order
    (datetime(2026, 11, 23, 10, 5), datetime(2026, 11, 23, 10, 40)),  # straight into the next, overlapping one
    (datetime(2026, 11, 23, 10, 25), datetime(2026, 11, 23, 10, 40)),
    (datetime(2026, 11, 23, 10, 40), datetime(2026, 11, 23, 12, 0)),
])
def test_period_end_of_breaks_that_run_into_each_other(when: datetime, expected: datetime) -> None:
    """Breaks that touch or overlap are one break: it ends when the last of them ends."""
    assert period_end(parse_policy(CHAINED, "chained.toml"), "school", when) == expected


def test_whole_minutes(policy: Policy) -> None:
    """A parsed policy's times are whole minutes; a school day or a break with seconds is not (the proxy then works
    the period out on every request instead of once a minute)."""
    assert whole_minutes(policy)
    default = policy.timetables["default"]
    day_with_seconds = dataclasses.replace(default, days={**default.days, 0: (time(8, 30, 15), time(14, 15))})
    break_with_seconds = dataclasses.replace(default, breaks=((time(10, 15), time(10, 30, 0, 1)),))
    for table in (day_with_seconds, break_with_seconds):
        assert not whole_minutes(dataclasses.replace(policy, timetables={**policy.timetables, "default": table}))
