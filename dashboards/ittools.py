"""IT's tools: the policy and lists in force (and reloading them), "why was this blocked?", a dry run of a
list change against the searches and hosts of the last days, over-blocking per list entry, and the
links to the metrics and the Grafana dashboard.

These pages never show a pupil's name, pseudonymous id or anything per group: only list entries,
counts and the search texts and hosts that the store keeps for the dry run without any pupil.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dashboards.dryrun import MAX_LINE, MAX_LINES, Change, ChangeError, dry_run, parse_lines
from dashboards.web import HERE, action, flash, lists_of, page, policy_of, render, store_of
from filters.decide import Context
from filters.policy import Policy, PolicyError
from klaswacht.explaining import explain
from klaswacht.loading import ROOT, Lists, fingerprint, load_lists, load_policy, read_list_files
from klaswacht.store.model import DRY_RUN_DAYS, Staff, now_utc

PERIODS = ("lesson", "break", "outside", "holiday")
EXPLAIN_HOST = "www.google.com"  # where a bare search text is taken to be typed
MAX_EXPLAIN = 2000  # characters of the text to explain
OVERBLOCKING_DAYS = 28
MAX_OVERBLOCKING_ROWS = 300
MAX_DRYRUN_ROWS = 300  # rows shown per table of a dry run's outcome (the most seen first)
GRAFANA = HERE / "grafana"
WEEKDAYS = ("ma", "di", "wo", "do", "vr", "za", "zo")


# --- policy and lists in force


def list_counts(lists: Lists) -> list[dict[str, Any]]:
    """Per loaded list file: its kind, category and how many entries of it are in force."""
    found: dict[str, dict[str, Any]] = {}
    for entry in lists.terms.entries:
        row = found.setdefault(entry.source, {"kind": "terms", "category": entry.category, "entries": 0})
        row["entries"] += 1
    for host in [*lists.hosts.entries.values(), *lists.hosts.allowed.values()]:
        row = found.setdefault(host.source, {"kind": "hosts", "category": host.category, "entries": 0})
        row["entries"] += 1
    rows = []
    for name in [*lists.files, *sorted(set(found) - set(lists.files))]:  # the policy's own allow list last
        row = found.get(name) or {"kind": "hosts" if "hosts/" in name else "terms", "category": Path(name).stem,
                                  "entries": 0}
        rows.append({"file": name, **row})
    return rows


def _timetables(policy: Policy) -> list[dict[str, str]]:
    out = []
    for name, timetable in sorted(policy.timetables.items()):
        days = ", ".join(f"{WEEKDAYS[d]} {a:%H:%M}-{b:%H:%M}" for d, (a, b) in sorted(timetable.days.items()))
        breaks = ", ".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in timetable.breaks)
        out.append({"name": name, "days": days, "breaks": breaks})
    return out


@page("it")
async def overview(request: Request, staff: Staff) -> Response:
    policy, lists = policy_of(request), lists_of(request)
    counts = list_counts(lists)
    return render(request, "it.html", staff, policy=policy, periods=[p for p in PERIODS if p in policy.periods],
                  timetables=_timetables(policy), counts=counts, errors=[str(e) for e in lists.errors],
                  refused=getattr(request.app.state, "it_refused", ()),
                  term_entries=len(lists.terms.entries),
                  host_entries=len(lists.hosts.entries) + len(lists.hosts.allowed),
                  seen_days=min(DRY_RUN_DAYS, policy.events_days),
                  metrics_url=request.app.state.config.metrics_url)


async def reload_lists(app_state: Any) -> tuple[str, int]:
    """Read policy and lists again if their files changed, as the proxy's hot reload does.

    Like the proxy, a version with a policy error or a list error is refused and the one in force
    stays. Returns ("unchanged" | "reloaded" | "refused", number of list files in force).
    """
    config = app_state.config
    watched = await asyncio.to_thread(fingerprint, [Path(config.policy)], list(config.lists))
    if watched == getattr(app_state, "it_watched", None):
        return "unchanged", len(app_state.lists.files)
    # Refused or not, this version is judged once (the next change is tried again), as in the proxy.
    app_state.it_watched = watched
    try:
        policy = await asyncio.to_thread(load_policy, config.policy)
    except PolicyError as e:
        app_state.it_refused = (str(e),)
        return "refused", len(app_state.lists.files)
    lists = await asyncio.to_thread(load_lists, list(config.lists), policy)
    if lists.errors:
        app_state.it_refused = tuple(str(e) for e in lists.errors)
        return "refused", len(app_state.lists.files)
    app_state.policy, app_state.lists, app_state.it_refused = policy, lists, ()
    return "reloaded", len(lists.files)


@action("it")
async def reload(request: Request, staff: Staff, form: FormData) -> Response:
    outcome, files = await reload_lists(request.app.state)
    if outcome == "reloaded":
        await store_of(request).note_action(staff.name, "reload-lists", detail={"files": files})
        flash(request, "it.reload.done", files=files)
    else:
        flash(request, f"it.reload.{outcome}")
    return RedirectResponse("/it", status_code=303)


# --- why was this blocked?


@page("it")
async def explain_page(request: Request, staff: Staff) -> Response:
    text = request.query_params.get("q", "").strip()[:MAX_EXPLAIN]
    period = request.query_params.get("period", "lesson")
    policy, lists = policy_of(request), lists_of(request)
    if period not in policy.periods:
        period = "lesson"
    output = None
    if text:
        context = Context(policy, lists.terms, lists.hosts, period)
        output = explain(text, context, EXPLAIN_HOST)
    return render(request, "it_explain.html", staff, q=text, period=period,
                  periods=[p for p in PERIODS if p in policy.periods], output=output, max_length=MAX_EXPLAIN)


# --- a dry run of a list change


def _dryrun_form(request: Request, staff: Staff, *, status_code: int = 200, **context: Any) -> Response:
    values = {"file": "", "add": "", "remove": "", "result": None, "error": None, "error_values": {}} | context
    return render(request, "it_dryrun.html", staff, status_code, files=lists_of(request).files, days=DRY_RUN_DAYS,
                  max_lines=MAX_LINES, max_chars=MAX_LINE, shown=MAX_DRYRUN_ROWS, **values)


def relative_name(file: str, folders: list[Path]) -> str:
    """A list file's path inside its list folder: where an override of it goes in the local folder."""
    path = Path(file) if Path(file).is_absolute() else ROOT / file
    for folder in reversed(folders):
        try:
            return path.resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            continue
    return file


@page("it")
async def dryrun_page(request: Request, staff: Staff) -> Response:
    return _dryrun_form(request, staff, file=request.query_params.get("file", ""))


@action("it")
async def dryrun_run(request: Request, staff: Staff, form: FormData) -> Response:
    file, add, remove = (str(form.get(name, "")) for name in ("file", "add", "remove"))
    entered: dict[str, Any] = {"file": file, "add": add, "remove": remove}
    config = request.app.state.config
    policy = policy_of(request)
    try:
        change = Change(file, parse_lines(add), parse_lines(remove))
        if file not in lists_of(request).files:
            raise ChangeError("it.dryrun.no_file", file=file)
        files = await asyncio.to_thread(read_list_files, list(config.lists), policy)
        since_day = (now_utc() - timedelta(days=DRY_RUN_DAYS)).date().isoformat()
        searches, hosts = await store_of(request).seen(since_day)
        result = await asyncio.to_thread(dry_run, files, change, policy, searches, hosts)
    except ChangeError as e:
        return _dryrun_form(request, staff, status_code=400, error=e.key, error_values=e.values, **entered)
    await store_of(request).note_action(staff.name, "dry-run", target=file,
                                        detail={"added": len(change.add), "removed": len(change.remove)})
    return _dryrun_form(request, staff, result=result, relative=relative_name(file, list(config.lists)), **entered)


# --- over-blocking per list entry


def overblocking_rows(answers: list[dict[str, Any]], blocks: dict[tuple[str, str | None, str], int]
                      ) -> list[dict[str, Any]]:
    """Requests and their answers joined with the blocks of the same list entry (rule, category, terms)."""
    rows: dict[tuple[str, str | None, str], dict[str, Any]] = {}
    for (rule, category, terms), count in blocks.items():
        rows[rule, category, terms] = {"rule": rule, "category": category, "terms": json.loads(terms or "[]"),
                                       "asked": 0, "granted": 0, "refused": 0, "blocks": count}
    for answer in answers:
        # The store keeps terms as a JSON list written this way: the same key as blocks_per_entry's.
        key = (answer["rule"], answer["category"], json.dumps(answer["terms"], ensure_ascii=False))
        row = rows.setdefault(key, {"rule": key[0], "category": key[1], "terms": answer["terms"], "blocks": 0})
        row.update(asked=int(answer["asked"] or 0), granted=int(answer["granted"] or 0),
                   refused=int(answer["refused"] or 0))
    return sorted(rows.values(), key=lambda r: (-r["granted"], -r["asked"], -r["blocks"], r["rule"],
                                                r["category"] or "", r["terms"]))


def _totals(rows: list[dict[str, Any]]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for row in rows:
        for key in ("blocks", "asked", "granted", "refused"):
            totals[key] += row[key]
    return totals


@page("it")
async def overblocking(request: Request, staff: Staff) -> Response:
    since = now_utc() - timedelta(days=OVERBLOCKING_DAYS)
    store = store_of(request)
    rows = overblocking_rows(await store.request_answers(since), await store.blocks_per_entry(since))
    return render(request, "it_overblocking.html", staff, rows=rows[:MAX_OVERBLOCKING_ROWS],
                  more=max(0, len(rows) - MAX_OVERBLOCKING_ROWS), days=OVERBLOCKING_DAYS, totals=_totals(rows))


# --- the Grafana dashboard's files


@page("it")
async def grafana_readme(request: Request, staff: Staff) -> Response:
    return FileResponse(GRAFANA / "README.md", media_type="text/plain; charset=utf-8")


@page("it")
async def grafana_json(request: Request, staff: Staff) -> Response:
    return FileResponse(GRAFANA / "klaswacht.json", media_type="application/json", filename="klaswacht.json")


routes: list[BaseRoute] = [
    Route("/it", overview, methods=["GET"]),
    Route("/it/reload", reload, methods=["POST"]),
    Route("/it/explain", explain_page, methods=["GET"]),
    Route("/it/dryrun", dryrun_page, methods=["GET"]),
    Route("/it/dryrun", dryrun_run, methods=["POST"]),
    Route("/it/overblocking", overblocking, methods=["GET"]),
    Route("/it/grafana", grafana_readme, methods=["GET"]),
    Route("/it/grafana/klaswacht.json", grafana_json, methods=["GET"]),
]
