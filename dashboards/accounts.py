"""Staff accounts and the audit log, for the administrator: list, add, change role and groups, disable or
enable, set a new password. Every change goes through the store, which writes its audit row in the same
transaction. An administrator cannot disable their own account nor take away their own admin role, so
there is always someone left who can manage accounts. A school's administrator sees and changes the
accounts of their school only; the board's administrator those of every school, and makes accounts for a
school or for the board (IT and admin without a school).
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dashboards.web import BadInput, action, flash, page, render, store_of
from klaswacht.store.model import ROLES, Staff, StoreError, check_school, from_iso

MIN_PASSWORD = 10
MAX_PASSWORD = 1000
MAX_NAME = 100
MAX_GROUPS = 100
AUDIT_ROWS = 200


def clean_name(value: object) -> str:
    name = str(value or "").strip()
    if not 0 < len(name) <= MAX_NAME or any(unicodedata.category(c).startswith("C") for c in name):
        raise BadInput("accounts.err.name")
    return name


def clean_role(value: object) -> str:
    if value not in ROLES:
        raise BadInput("accounts.err.role")
    return str(value)


def clean_password(value: object) -> str:
    password = str(value or "")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadInput("accounts.err.password", min=MIN_PASSWORD, max=MAX_PASSWORD)
    return password


def clean_groups(form: FormData) -> list[str]:
    """The ticked groups plus the comma-separated other ones, stripped, each once, in order."""
    given = [str(g) for g in form.getlist("groups")] + str(form.get("groups_other", "")).split(",")
    groups = list(dict.fromkeys(g.strip() for g in given if g.strip()))
    if len(groups) > MAX_GROUPS or any(len(g) > MAX_NAME or not g.isprintable() for g in groups):
        raise BadInput("accounts.err.groups")
    return groups


def _user_path(name: str) -> str:
    return f"/accounts/user?name={quote(name, safe='')}"


async def _list_page(request: Request, staff: Staff, *, status_code: int = 200, error: BadInput | None = None,
                     entered: dict[str, Any] | None = None) -> Response:
    store = store_of(request)
    return render(request, "accounts.html", staff, status_code, users=await store.users(),
                  known_groups=await store.group_names(), roles=ROLES, min_password=MIN_PASSWORD,
                  error=error,
                  entered=entered or {"name": "", "role": "teacher", "school": "", "groups": [], "groups_other": ""})


async def _user_page(request: Request, staff: Staff, name: str, *, status_code: int = 200,
                     error: BadInput | None = None) -> Response:
    store = store_of(request)
    user = next((u for u in await store.users() if u["name"] == name), None)
    if user is None:
        return render(request, "error.html", staff, 404, message_key="accounts.err.unknown",
                      message_values={"name": name})
    known = await store.group_names()
    return render(request, "accounts_user.html", staff, status_code, user=user, roles=ROLES,
                  known_groups=sorted(set(known) | set(user["groups"])), min_password=MIN_PASSWORD, error=error,
                  self_edit=name == staff.name)


@page("accounts")
async def accounts_page(request: Request, staff: Staff) -> Response:
    return await _list_page(request, staff)


@page("accounts")
async def user_page(request: Request, staff: Staff) -> Response:
    return await _user_page(request, staff, request.query_params.get("name", ""))


@action("accounts")
async def add(request: Request, staff: Staff, form: FormData) -> Response:
    entered = {"name": str(form.get("name", ""))[:MAX_NAME], "role": form.get("role"),
               "school": str(form.get("school", ""))[:MAX_NAME],
               "groups": form.getlist("groups"), "groups_other": str(form.get("groups_other", ""))[:2000]}
    store = store_of(request)
    try:
        name = clean_name(form.get("name"))
        role = clean_role(form.get("role"))
        groups = clean_groups(form)
        password = clean_password(form.get("password"))
        school = _clean_school(form) if staff.school is None else staff.school
        if await store.staff(name) is not None:
            raise BadInput("accounts.err.exists", name=name)
    except BadInput as e:
        return await _list_page(request, staff, status_code=400, error=e, entered=entered)
    if school is None:
        await store.add_user(staff.name, name, role, password, groups, board=True)
    else:
        await store.scoped(school).add_user(staff.name, name, role, password, groups)
    flash(request, "accounts.added", name=name)
    return RedirectResponse("/accounts", status_code=303)


def _clean_school(form: FormData) -> str | None:
    """The school the board's administrator makes an account for; None (left empty): the board."""
    text = str(form.get("school", "")).strip()
    if not text:
        return None
    try:
        return check_school(text)
    except StoreError:
        raise BadInput("accounts.err.school") from None


async def _target(request: Request, staff: Staff, form: FormData) -> str | Response:
    """The account a change is for, or the 404 page when there is none (in the administrator's school)."""
    name = str(form.get("name", ""))
    store = store_of(request)
    found = await store.staff(name)
    if found is None or not store.covers(found.school):
        return render(request, "error.html", staff, 404, message_key="accounts.err.unknown",
                      message_values={"name": name[:MAX_NAME]})
    return name


@action("accounts")
async def change(request: Request, staff: Staff, form: FormData) -> Response:
    name = await _target(request, staff, form)
    if isinstance(name, Response):
        return name
    try:
        role = clean_role(form.get("role"))
        groups = clean_groups(form)
        if name == staff.name and role != "admin":
            raise BadInput("accounts.err.self_role")
    except BadInput as e:
        return await _user_page(request, staff, name, status_code=400, error=e)
    await store_of(request).update_user(staff.name, name, role=role, groups=groups)
    flash(request, "accounts.changed", name=name)
    return RedirectResponse(_user_path(name), status_code=303)


@action("accounts")
async def set_status(request: Request, staff: Staff, form: FormData) -> Response:
    name = await _target(request, staff, form)
    if isinstance(name, Response):
        return name
    disabled = form.get("disabled") == "1"
    if disabled and name == staff.name:
        return await _user_page(request, staff, name, status_code=400, error=BadInput("accounts.err.self_disable"))
    await store_of(request).update_user(staff.name, name, disabled=disabled)
    flash(request, "accounts.disabled_done" if disabled else "accounts.enabled_done", name=name)
    return RedirectResponse(_user_path(name), status_code=303)


@action("accounts")
async def set_password(request: Request, staff: Staff, form: FormData) -> Response:
    name = await _target(request, staff, form)
    if isinstance(name, Response):
        return name
    try:
        password = clean_password(form.get("password"))
    except BadInput as e:
        return await _user_page(request, staff, name, status_code=400, error=e)
    await store_of(request).update_user(staff.name, name, password=password)
    flash(request, "accounts.password_done", name=name)
    return RedirectResponse(_user_path(name), status_code=303)


def _local_time(text: str, zone: ZoneInfo) -> str:
    try:
        return from_iso(text).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return text


def audit_rows(rows: list[dict[str, Any]], zone: ZoneInfo) -> list[dict[str, Any]]:
    """The audit log as people read it: local times, details as text, pupils and devices not by their id."""
    out = []
    for row in rows:
        target = row["target"]
        masked = None
        if isinstance(target, str) and target.startswith(("p-", "d-")):
            masked, target = ("pupil" if target.startswith("p-") else "device"), None
        detail = row["detail"] if isinstance(row["detail"], dict) else {}
        text = ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in sorted(detail.items()))
        out.append({"time": _local_time(row["time"], zone), "iso": row["time"], "actor": row["actor"],
                    "school": row.get("school"),
                    "action": row["action"], "target": target, "masked": masked, "detail": text})
    return out


@page("accounts")
async def audit_page(request: Request, staff: Staff) -> Response:
    try:
        zone = ZoneInfo(request.app.state.policy.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("Europe/Amsterdam")
    rows = audit_rows(await store_of(request).audit_log(AUDIT_ROWS), zone)
    return render(request, "accounts_audit.html", staff, rows=rows, limit=AUDIT_ROWS)


routes: list[BaseRoute] = [
    Route("/accounts", accounts_page, methods=["GET"]),
    Route("/accounts/add", add, methods=["POST"]),
    Route("/accounts/user", user_page, methods=["GET"]),
    Route("/accounts/change", change, methods=["POST"]),
    Route("/accounts/status", set_status, methods=["POST"]),
    Route("/accounts/password", set_password, methods=["POST"]),
    Route("/accounts/audit", audit_page, methods=["GET"]),
]
