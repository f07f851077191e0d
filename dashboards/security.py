"""Sign-in throttling, CSRF tokens and the headers every response carries."""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_FIELD = "csrf"

# The pages use only their own scripts and styles: no inline script can run, nothing can frame them.
_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """Adds the security headers, and `no-store` to everything but static files (pages hold pupils' names)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += _HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(expected: object, given: object) -> bool:
    return isinstance(expected, str) and isinstance(given, str) and bool(expected) and \
        secrets.compare_digest(expected.encode(), given.encode())


class LoginThrottle:
    """Failed sign-ins per user name and per address in a sliding window; past the limit, refuse for a while."""

    def __init__(self, failures: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.window = window
        self.clock = clock
        self._failed: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        times = self._failed.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def wait(self, *keys: str) -> float:
        """Seconds until a sign-in with these keys may be tried again; 0 if it may be tried now."""
        longest = 0.0
        for key in keys:
            times = self._recent(key)
            if len(times) >= self.failures:
                longest = max(longest, times[0] + self.window - self.clock())
        return longest

    def failed(self, *keys: str) -> None:
        now = self.clock()
        for key in keys:
            times = self._recent(key)
            times.append(now)
            self._failed[key] = times
        if len(self._failed) > 10_000:  # a flood of made-up names must not grow memory without bound
            for key in [k for k, v in self._failed.items() if not self._recent(k)]:
                del self._failed[key]

    def succeeded(self, name_key: str, *others: str) -> None:
        """A right password: the name's failures are forgiven; of the other keys, only this attempt is taken back."""
        self._failed.pop(name_key, None)
        for key in others:
            times = self._failed.get(key)
            if times:
                times.pop()
