"""What every page and form shares: who is signed in, the templates, and the two decorators that
check sign-in, role and CSRF before a handler runs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from dashboards.catalogue import DEFAULT_LANGUAGE, LANGUAGES, translate
from dashboards.roles import can
from dashboards.security import CSRF_FIELD, csrf_ok, new_csrf_token
from filters.policy import Policy
from klaswacht.loading import Lists
from klaswacht.store import Store
from klaswacht.store.model import Staff, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True

Page = Callable[[Request, Staff], Awaitable[Response]]
Action = Callable[[Request, Staff, FormData], Awaitable[Response]]


class BadInput(ValueError):
    """A form value the dashboard cannot use: shown to the person as the catalogue's message `key`."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


def store_of(request: Request) -> Store:
    """The store as the signed-in account sees it: kept to their school (a board account: every school).

    Before anyone is known (the sign-in page) it is the dashboard's own store, used only for what has no
    school: finding an account by its name, checking its password."""
    store: Store = getattr(request.state, "store", None) or request.app.state.store
    return store


def policy_of(request: Request) -> Policy:
    policy: Policy = request.app.state.policy
    return policy


def lists_of(request: Request) -> Lists:
    """The lists in force for the dashboard (IT's reload replaces them)."""
    lists: Lists = request.app.state.lists
    return lists


def language(request: Request) -> str:
    chosen = request.cookies.get("lang", DEFAULT_LANGUAGE)
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = new_csrf_token()
    return token


def flash(request: Request, key: str, **values: object) -> None:
    """A message for the next page shown (after the redirect of a form)."""
    request.session["flash"] = [key, {k: str(v) for k, v in values.items()}]


def local_path(target: object, default: str) -> str:
    """`target` if it is a path on this site (never another site: no open redirect), else `default`."""
    if isinstance(target, str) and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return default


def render(request: Request, template: str, staff: Staff | None, status_code: int = 200,
           **context: Any) -> Response:
    lang = language(request)

    def t(key: str, **values: object) -> str:
        return translate(key, lang, **values)

    message = request.session.pop("flash", None)
    return templates.TemplateResponse(request, template, {
        "staff": staff, "lang": lang, "t": t, "csrf": csrf_token(request), "can": can,
        "flash": t(message[0], **message[1]) if message else None, "path": request.url.path, **context,
    }, status_code=status_code)


def error_page(request: Request, staff: Staff | None, status_code: int, key: str, **values: object) -> Response:
    return render(request, "error.html", staff, status_code, message_key=key, message_values=values)


async def current_staff(request: Request) -> Staff | None:
    """The signed-in account, read anew on every request: a disabled account or changed role counts at once."""
    name = request.session.get("user")
    if not isinstance(name, str):
        return None
    staff = await store_of(request).staff(name)
    # A session of an earlier generation ended at a sign-out, a new password, or a changed role or groups.
    if staff is None or staff.disabled or request.session.get("sessions") != staff.sessions:
        request.session.clear()
        return None
    # Every query of this request is kept to the account's school, changes by id included.
    request.state.store = store_of(request).scoped(staff.school)
    return staff


def _to_login(request: Request) -> Response:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


def page(permission: str | None) -> Callable[[Page], Callable[[Request], Awaitable[Response]]]:
    """A GET page for signed-in staff whose role has `permission` (None: any role)."""

    def wrap(handler: Page) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                staff = await current_staff(request)
                if staff is None:
                    return _to_login(request)
                if permission is not None and not can(staff.role, permission):
                    return error_page(request, staff, 403, "error.forbidden")
                return await handler(request, staff)
            except StoreUnavailable as e:
                log.warning("dashboard: store unavailable: %s", e)
                return error_page(request, None, 503, "error.store")
        return endpoint

    return wrap


def action(permission: str | None) -> Callable[[Action], Callable[[Request], Awaitable[Response]]]:
    """A form POST: signed in, a valid CSRF token, a role with `permission`; bad input gets a 400 page."""

    def wrap(handler: Action) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            staff: Staff | None = None
            try:
                staff = await current_staff(request)
                if staff is None:
                    return _to_login(request)
                async with request.form(max_files=0, max_fields=100) as form:
                    if not csrf_ok(request.session.get("csrf"), form.get(CSRF_FIELD)):
                        return error_page(request, staff, 403, "error.csrf")
                    if permission is not None and not can(staff.role, permission):
                        return error_page(request, staff, 403, "error.forbidden")
                    return await handler(request, staff, form)
            except BadInput as e:
                return error_page(request, staff, 400, e.key, **e.values)
            except StoreUnavailable as e:
                log.warning("dashboard: store unavailable: %s", e)
                return error_page(request, None, 503, "error.store")
            except StoreError as e:
                return error_page(request, staff, 400, "error.bad_input", reason=str(e))
        return endpoint

    return wrap
