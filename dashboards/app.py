"""The staff dashboard as a Starlette app: the store opened in the lifespan, one route list per page family."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dashboards import accounts, auth, feed, ittools, lessons, reports
from dashboards.config import DashboardConfig, load_session_secret
from dashboards.security import LoginThrottle, SecurityHeaders
from dashboards.web import HERE, current_staff, error_page
from filters.policy import PolicyError
from klaswacht.loading import load_lists, load_policy
from klaswacht.store import Store, gateway_school

log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def not_found(request: Request, exc: Exception) -> Response:
    return error_page(request, await current_staff(request), 404, "error.not_found")


def create_app(config: DashboardConfig) -> Starlette:
    """The dashboard for `config`; the policy is read at once (a bad one is refused before anything starts)."""
    if not str(config.session_secret):
        config = replace(config, session_secret=load_session_secret(config.data_dir))
    policy = load_policy(config.policy)  # PolicyError: the caller reports file:line:reason

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = Store(config.data_dir, events_days=policy.events_days, audit_days=policy.audit_days,
                      database_url=config.database_url, school=gateway_school(policy.school_id))
        # No background tasks: the dashboard records no events; the proxy owns writing and purging.
        # Not strict: a database locked or gone at start gives pages that say so (503), not a dead dashboard.
        await store.open(background=False, strict=False)
        app.state.store = store
        try:
            yield
        finally:
            await store.close()

    app = Starlette(
        routes=[Route("/healthz", healthz), *auth.routes, *feed.routes, *lessons.routes, *reports.routes,
                *ittools.routes, *accounts.routes,
                Mount("/static", StaticFiles(directory=HERE / "static"), name="static")],
        middleware=[Middleware(SecurityHeaders),
                    Middleware(SessionMiddleware, secret_key=config.session_secret, session_cookie="klaswacht",
                               max_age=config.session_hours * 3600, same_site="strict",
                               https_only=config.secure_cookies)],
        exception_handlers={404: not_found},
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.stopping = asyncio.Event()  # set by serve.DashboardServer as it stops: the live lists end
    app.state.policy = policy
    app.state.lists = load_lists(list(config.lists), policy)
    app.state.throttle = LoginThrottle(config.login_failures, config.login_window)
    return app


__all__ = ["PolicyError", "create_app"]
