"""filters.timetable.local_time: a UTC instant to the school's wall clock, daylight saving included."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from filters.policy import Policy
from filters.timetable import local_time, period_at

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@pytest.mark.parametrize(("instant", "expected"), [
    # winter time (CET, UTC+1)
    (datetime(2026, 1, 12, 9, 0, tzinfo=UTC), datetime(2026, 1, 12, 10, 0)),
    # the last Sunday of March: 02:00 CET becomes 03:00 CEST at 01:00 UTC
    (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), datetime(2026, 3, 29, 1, 59)),
    (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(2026, 3, 29, 3, 0)),
    (datetime(2026, 3, 30, 7, 0, tzinfo=UTC), datetime(2026, 3, 30, 9, 0)),
    # the last Sunday of October: 03:00 CEST becomes 02:00 CET at 01:00 UTC (02:xx happens twice)
    (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 2, 30)),
    (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), datetime(2026, 10, 25, 2, 30)),
    (datetime(2026, 10, 26, 7, 0, tzinfo=UTC), datetime(2026, 10, 26, 8, 0)),
    # an aware instant in another zone is the same instant
    (datetime(2026, 6, 1, 8, 0, tzinfo=ZoneInfo("Europe/London")), datetime(2026, 6, 1, 9, 0)),
])
def test_local_time_follows_daylight_saving(instant: datetime, expected: datetime) -> None:
    """The wall-clock time in Amsterdam of an instant, on both sides of both clock changes."""
    assert local_time(instant, AMSTERDAM) == expected


def test_local_time_refuses_a_naive_datetime() -> None:
    """A naive datetime could be any instant: refused rather than guessed."""
    with pytest.raises(ValueError, match="naive"):
        local_time(datetime(2026, 3, 29, 1, 0), AMSTERDAM)


@pytest.mark.parametrize(("instant", "expected"), [
    # Monday after the March change: 06:40 UTC is 08:40 CEST (lesson); in CET 07:40 would be outside
    (datetime(2026, 3, 30, 6, 40, tzinfo=UTC), "lesson"),
    (datetime(2026, 3, 30, 8, 20, tzinfo=UTC), "break"),  # 10:20 CEST; in CET it would be 09:20, a lesson
    # Monday after the October change: 09:20 UTC is 10:20 CET (break); in CEST 11:20 (lesson)
    (datetime(2026, 10, 26, 9, 20, tzinfo=UTC), "break"),
    (datetime(2026, 10, 26, 13, 20, tzinfo=UTC), "outside"),  # 14:20 CET, after 14:15
])
def test_a_utc_instant_gives_the_period_of_the_local_wall_clock(policy: Policy, instant: datetime,
                                                                 expected: str) -> None:
    """period_at on local_time: the timetable is read on the school's clock, whatever the season."""
    assert period_at(policy, "school", local_time(instant, AMSTERDAM)) == expected
