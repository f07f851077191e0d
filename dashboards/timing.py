"""The school's clock on the dashboard: local times, today's midnight, the period of a group and the end
of its lesson.

Two clocks meet here. Events, grants and bans keep real instants (aware, UTC). The timetable is read at
`config.timetable_now()`, which is the real clock in production and a fake one in tests and demos
(`--fake-clock`). A time shown or typed in ("until 10:45", "the lesson ends at 10:15") is on the
timetable's clock; it becomes a real instant by adding its distance from the timetable's now to the real
now: until = real_now + (lesson_end_local - timetable_now_local). Without a fake clock both are one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dashboards.config import DashboardConfig
from filters.policy import Policy
from filters.timetable import local_time, period_at, period_end

# "Until the end of this lesson" when the group is not in a lesson now (a break, before school, a holiday).
FALLBACK = timedelta(minutes=45)


def local_midnight(moment: datetime, zone: ZoneInfo) -> datetime:
    """The start of the local day that the aware instant `moment` falls on, as an aware UTC instant."""
    return datetime.combine(local_time(moment, zone).date(), time(0), zone).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class SchoolClock:
    """The real now and the timetable's now of one request, and the school's time zone."""

    policy: Policy
    zone: ZoneInfo
    real_now: datetime  # aware UTC
    timetable_now: datetime  # aware UTC: config.timetable_now(), the same as real_now without a fake clock

    @classmethod
    def of(cls, policy: Policy, config: DashboardConfig) -> SchoolClock:
        real_now = datetime.now(UTC)
        timetable_now = real_now if config.fake_clock is None else config.timetable_now()
        return cls(policy, ZoneInfo(policy.timezone), real_now, timetable_now)

    @property
    def local_now(self) -> datetime:
        """The timetable's now on the school's wall clock (naive)."""
        return local_time(self.timetable_now, self.zone)

    def midnight(self) -> datetime:
        """Today's local midnight (of the real day: events keep real times), as an aware UTC instant."""
        return local_midnight(self.real_now, self.zone)

    def local(self, instant: datetime) -> datetime:
        """The school wall-clock time (naive, on the timetable's clock) of a real aware instant."""
        return local_time(instant + (self.timetable_now - self.real_now), self.zone)

    def hhmm(self, instant: datetime) -> str:
        """HH:MM on the school's clock, to the nearest second first: the store keeps milliseconds, so an end
        at 10:15 can come back as 10:14:59.999."""
        local = self.local(instant) + timedelta(microseconds=500_000)
        return local.strftime("%H:%M")

    def instant(self, local: datetime) -> datetime:
        """The real aware UTC instant of a naive school wall-clock time on the timetable's clock."""
        return self.real_now + (local - self.local_now)

    def at_today(self, clock: time) -> datetime:
        """The real instant of `clock` (HH:MM) today on the school's clock."""
        return self.instant(datetime.combine(self.local_now.date(), clock))

    def period(self, group: str) -> str:
        """"lesson", "break", "outside" or "holiday" for `group` now."""
        return period_at(self.policy, group, self.local_now)

    def period_end(self, group: str) -> datetime | None:
        """When the lesson or break `group` is in now ends, as a real aware UTC instant; None outside school."""
        end = period_end(self.policy, group, self.local_now)
        return None if end is None else self.instant(end)

    def lesson_end(self, group: str) -> datetime | None:
        """The end of the lesson `group` is in now (a real aware UTC instant); None when it is not in a lesson."""
        return self.period_end(group) if self.period(group) == "lesson" else None

    def until_lesson_end(self, group: str) -> tuple[datetime, bool]:
        """The end of this lesson, or FALLBACK from now when not in a lesson; and whether it fell back."""
        end = self.lesson_end(group)
        return (self.real_now + FALLBACK, True) if end is None else (end, False)
