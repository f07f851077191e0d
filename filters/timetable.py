"""Which period it is for a group: lesson, break, outside school hours or holiday, and when it ends.

Pure: the caller gives the local wall-clock time (the proxy converts with zoneinfo, so daylight
saving is the caller's and the tz database's business, not this module's).
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from filters.policy import Policy, Timetable


def _timetable(policy: Policy, group: str) -> Timetable:
    name = next((g.timetable for g in policy.groups if g.name == group), "default")
    return policy.timetables[name]


def period_at(policy: Policy, group: str, when: datetime) -> str:
    """The period for `group` at local time `when`: "lesson", "break", "outside" or "holiday"."""
    day = when.date()
    if any(h.first <= day <= h.last for h in policy.holidays):
        return "holiday"
    timetable = _timetable(policy, group)
    hours = timetable.days.get(when.weekday())
    now = when.time()
    if hours is None or not hours[0] <= now < hours[1]:
        return "outside"
    if any(start <= now < end for start, end in timetable.breaks):
        return "break"
    return "lesson"


def period_end(policy: Policy, group: str, when: datetime) -> datetime | None:
    """When the lesson or break `group` is in at local time `when` ends (same local time); None outside
    school hours and on holidays.

    A lesson ends at the start of the next break that day, or at the end of the school day. A break
    ends at its end (one that runs straight into another at the end of the last), at the latest at
    the end of the school day.
    """
    if period_at(policy, group, when) not in ("lesson", "break"):
        return None
    timetable = _timetable(policy, group)
    day_end = timetable.days[when.weekday()][1]
    now = when.time()
    ends = [end for start, end in timetable.breaks if start <= now < end]
    if ends:
        end = max(ends)
        while following := [e for s, e in timetable.breaks if s <= end < e]:
            end = max(following)
    else:
        end = min((start for start, _ in timetable.breaks if start > now), default=day_end)
    return datetime.combine(when.date(), min(end, day_end), when.tzinfo)


def whole_minutes(policy: Policy) -> bool:
    """Whether every time in the policy's timetables is a whole minute: the period can then change only at the
    start of a minute of local time (holidays change at midnight), so a caller may work it out once a minute."""
    times = [t for table in policy.timetables.values()
             for t in (*(t for hours in table.days.values() for t in hours), *(t for b in table.breaks for t in b))]
    return all(t.second == 0 and t.microsecond == 0 for t in times)


def local_time(moment: datetime, zone: tzinfo) -> datetime:
    """The school's wall-clock time (naive) at the aware instant `moment`, daylight saving included.

    A naive `moment` is refused: it could be any instant, and the period would silently shift an hour.
    """
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: give an aware instant (UTC)")
    return moment.astimezone(zone).replace(tzinfo=None)
