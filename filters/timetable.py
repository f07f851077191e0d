"""Which period it is for a group: lesson, break, outside school hours or holiday.

Pure: the caller gives the local wall-clock time (the proxy converts with zoneinfo, so daylight
saving is the caller's and the tz database's business, not this module's).
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from filters.policy import Policy


def period_at(policy: Policy, group: str, when: datetime) -> str:
    """The period for `group` at local time `when`: "lesson", "break", "outside" or "holiday"."""
    day = when.date()
    if any(h.first <= day <= h.last for h in policy.holidays):
        return "holiday"
    name = next((g.timetable for g in policy.groups if g.name == group), "default")
    timetable = policy.timetables[name]
    hours = timetable.days.get(when.weekday())
    now = when.time()
    if hours is None or not hours[0] <= now < hours[1]:
        return "outside"
    if any(start <= now < end for start, end in timetable.breaks):
        return "break"
    return "lesson"


def local_time(moment: datetime, zone: tzinfo) -> datetime:
    """The school's wall-clock time (naive) at the aware instant `moment`, daylight saving included.

    A naive `moment` is refused: it could be any instant, and the period would silently shift an hour.
    """
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: give an aware instant (UTC)")
    return moment.astimezone(zone).replace(tzinfo=None)
