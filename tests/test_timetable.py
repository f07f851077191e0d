"""filters.timetable: which period it is for a group at a local wall-clock time."""

from __future__ import annotations

from datetime import datetime

import pytest

from filters.policy import Policy
from filters.timetable import period_at


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
