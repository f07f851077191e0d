"""Reports: blocks, alerts, pupils' reports and requests per day, per category and per group, as charts
with the same numbers in tables, and as CSV. Counts only: no pupil is named anywhere in them.

A teacher sees their own groups; care, IT and the administrator see the whole school.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from dashboards.catalogue import MESSAGES, translate
from dashboards.roles import can, whole_school
from dashboards.web import language, page, render, store_of
from klaswacht.store.model import FEED_ACTIONS, Staff, now_utc

PERIODS = (7, 28)  # days a report may cover
DEFAULT_DAYS = 28
CSV_HEADER = ("day", "action", "category", "group", "count")


def chosen_days(request: Request) -> int:
    """The period asked for in `?days=`, if it is one of PERIODS; else the default."""
    try:
        days = int(request.query_params.get("days", DEFAULT_DAYS))
    except ValueError:
        return DEFAULT_DAYS
    return days if days in PERIODS else DEFAULT_DAYS


def first_day(days: int, now: datetime) -> date:
    """The first (UTC) day of a period of `days` days that ends today."""
    return now.astimezone(UTC).date() - timedelta(days=days - 1)


def _groups(staff: Staff) -> frozenset[str] | None:
    """The groups whose counts `staff` may see; None: the whole school."""
    return None if whole_school(staff.role) else staff.groups


def _by_group_shown(staff: Staff) -> bool:
    """Only staff who work with pupils see counts per group: for a small group, one alert on one day can
    point to a child. IT and the administrator get the school's counts without groups; those of the board
    get counts per school (the store's board view puts the school where the group is)."""
    return can(staff.role, "feed") or staff.school is None


async def _counts(request: Request, staff: Staff, days: int, now: datetime) -> list[dict[str, Any]]:
    start = first_day(days, now)
    since = datetime(start.year, start.month, start.day, tzinfo=UTC)
    rows = await store_of(request).daily_counts(since, _groups(staff))
    if _by_group_shown(staff):
        return rows
    merged: dict[tuple[str, str, str | None], int] = {}
    for row in rows:
        key = (row["day"], row["action"], row["category"])
        merged[key] = merged.get(key, 0) + int(row["count"])
    return [{"day": d, "action": a, "category": c, "group_name": None, "count": n} for (d, a, c), n in merged.items()]


@dataclass
class Table:
    """Counts per row label and action: what one chart draws and its table shows."""

    keys: list[str | None] = field(default_factory=list)
    counts: dict[str | None, dict[str, int]] = field(default_factory=dict)

    def add(self, key: str | None, action: str, count: int) -> None:
        if key not in self.counts:
            self.keys.append(key)
            self.counts[key] = dict.fromkeys(FEED_ACTIONS, 0)
        self.counts[key][action] += count

    def total(self, key: str | None) -> int:
        return sum(self.counts[key].values())

    def series(self) -> dict[str, list[int]]:
        return {action: [self.counts[k][action] for k in self.keys] for action in FEED_ACTIONS}


@dataclass
class Report:
    days: list[str]
    by_day: Table
    by_category: Table
    by_group: Table
    totals: dict[str, int]


def summarise(rows: Iterable[dict[str, Any]], days: int, now: datetime) -> Report:
    """The counts of `daily_counts` per day (every day of the period, also empty ones), category and group."""
    start = first_day(days, now)
    day_keys = [(start + timedelta(days=i)).isoformat() for i in range(days)]
    by_day, by_category, by_group = Table(), Table(), Table()
    for key in day_keys:
        by_day.add(key, FEED_ACTIONS[0], 0)
    totals = dict.fromkeys(FEED_ACTIONS, 0)
    for row in rows:
        action, count = row["action"], int(row["count"])
        if action not in totals:
            continue
        by_day.add(row["day"], action, count)
        by_category.add(row["category"], action, count)
        by_group.add(row["group_name"], action, count)
        totals[action] += count
    # Biggest first for categories; groups by name, as a school lists them.
    by_category.keys.sort(key=lambda k: (-by_category.total(k), k or ""))
    by_group.keys.sort(key=lambda k: (k is None, k or ""))
    return Report(day_keys, by_day, by_category, by_group, totals)


def label(kind: str, value: str | None, lang: str) -> str:
    """A category or group as people read it: the catalogue's name when it has one, else as stored."""
    if value is None:
        return translate(f"reports.no_{kind}", lang)
    key = f"category.{value}" if kind == "category" else f"reports.{kind}.{value}"
    return translate(key, lang) if key in MESSAGES else value


def chart_data(report: Report, lang: str) -> dict[str, Any]:
    """What static/reports.js draws: labels and one series per action for each chart."""
    return {
        "actions": [{"key": a, "label": translate(f"reports.action.{a}", lang)} for a in FEED_ACTIONS],
        "charts": {
            "days": {"labels": report.days, "series": report.by_day.series()},
            "categories": {"labels": [label("category", k, lang) for k in report.by_category.keys],
                           "series": report.by_category.series()},
            "groups": {"labels": [label("group", k, lang) for k in report.by_group.keys],
                       "series": report.by_group.series()},
        },
    }


@page("reports")
async def reports_page(request: Request, staff: Staff) -> Response:
    days = chosen_days(request)
    now = now_utc()
    report = summarise(await _counts(request, staff, days, now), days, now)
    lang = language(request)
    groups = _groups(staff)
    return render(request, "reports.html", staff, days=days, periods=PERIODS, report=report,
                  actions=FEED_ACTIONS, data=chart_data(report, lang), whole_school=groups is None,
                  groups=sorted(groups or ()), label=lambda kind, value: label(kind, value, lang),
                  empty=not any(report.totals.values()), by_group_shown=_by_group_shown(staff),
                  by_school=staff.school is None)


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text: never read as a formula (=, +, -, @ first)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(rows: Iterable[dict[str, Any]], by_school: bool = False) -> str:
    """The rows of `daily_counts` as CSV with a header row, UTF-8 BOM first so that Excel reads it right;
    `by_school`: the board's counts, a school in the fourth column."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow((*CSV_HEADER[:3], "school", *CSV_HEADER[4:]) if by_school else CSV_HEADER)
    for row in rows:
        writer.writerow([_cell(row["day"]), _cell(row["action"]), _cell(row["category"]),
                         _cell(row["group_name"]), int(row["count"])])
    return out.getvalue()


@page("reports")
async def reports_csv(request: Request, staff: Staff) -> Response:
    days = chosen_days(request)
    now = now_utc()
    rows = await _counts(request, staff, days, now)
    await store_of(request).note_action(staff.name, "export-report", detail={"days": days})
    name = f"klaswacht-{days}-dagen-{now.date().isoformat()}.csv"
    return Response(to_csv(rows, by_school=staff.school is None), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{name}"'})


routes: list[BaseRoute] = [
    Route("/reports", reports_page, methods=["GET"]),
    Route("/reports.csv", reports_csv, methods=["GET"]),
]
