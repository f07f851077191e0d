"""Signing in and out, and the language switch."""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from dashboards.catalogue import LANGUAGES
from dashboards.roles import HOME
from dashboards.security import CSRF_FIELD, LoginThrottle, csrf_ok, new_csrf_token
from dashboards.web import current_staff, error_page, flash, local_path, render, store_of
from klaswacht.store.model import Staff, StoreUnavailable


async def login_page(request: Request) -> Response:
    staff = await current_staff(request)
    if staff is not None:
        return RedirectResponse(HOME[staff.role], status_code=303)
    try:
        first_start = not await store_of(request).scoped(None).users()
    except StoreUnavailable:
        return error_page(request, None, 503, "error.store")
    return render(request, "login.html", None, next=local_path(request.query_params.get("next"), ""),
                  first_start=first_start)


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


async def login(request: Request) -> Response:
    throttle: LoginThrottle = request.app.state.throttle
    async with request.form(max_files=0, max_fields=10) as form:
        name = str(form.get("name", "")).strip()[:100]
        password = str(form.get("password", ""))[:1000]
        target = local_path(form.get("next"), "")
        if not csrf_ok(request.session.get("csrf"), form.get(CSRF_FIELD)):
            return error_page(request, None, 403, "error.csrf")
    keys = (f"name:{name.casefold()}", f"addr:{_client(request)}")
    wait = throttle.wait(*keys)
    if wait > 0:
        return render(request, "login.html", None, 429, next=target, name=name, error="login.limited",
                      minutes=max(1, math.ceil(wait / 60)))
    # Counted as a failure before the (slow) password check and taken back on success: attempts sent all
    # at once cannot slip past the limit while the first ones are still being checked.
    throttle.failed(*keys)
    try:
        staff = await store_of(request).verify_user(name, password) if name and password else None
    except StoreUnavailable:
        throttle.succeeded(*keys)
        return error_page(request, None, 503, "error.store")
    if staff is None:
        return render(request, "login.html", None, 401, next=target, name=name, error="login.failed")
    throttle.succeeded(*keys)
    # A new session on sign-in: a session id planted before it (fixation) is worth nothing after.
    request.session.clear()
    request.session.update({"user": staff.name, "csrf": new_csrf_token(), "sessions": staff.sessions})
    await store_of(request).scoped(staff.school).note_action(staff.name, "login")
    return RedirectResponse(target or HOME[staff.role], status_code=303)


async def logout(request: Request) -> Response:
    async with request.form(max_files=0, max_fields=10) as form:
        token = form.get(CSRF_FIELD)
    staff: Staff | None = await current_staff(request)
    if staff is None:
        return RedirectResponse("/login", status_code=303)
    if not csrf_ok(request.session.get("csrf"), token):
        return error_page(request, staff, 403, "error.csrf")
    request.session.clear()
    await store_of(request).sign_out(staff.name)  # also any other copy of this session's cookie
    flash(request, "login.signed_out")
    return RedirectResponse("/login", status_code=303)


async def switch_language(request: Request) -> Response:
    """A preference, not a change of anything stored: a plain link that sets a cookie."""
    chosen = request.path_params["lang"]
    response = RedirectResponse(local_path(request.query_params.get("next"), "/"), status_code=303)
    if chosen in LANGUAGES:
        response.set_cookie("lang", chosen, max_age=365 * 24 * 3600, samesite="lax", httponly=True)
    return response


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/taal/{lang}", switch_language, methods=["GET"]),
]
