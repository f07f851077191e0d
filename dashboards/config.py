"""What the dashboard process is started with: where the store, policy and lists are, and how it is reached."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.datastructures import Secret

from klaswacht.loading import DEFAULT_POLICY, SHIPPED_LISTS

SECRET_FILE = "dashboard.key"


def load_session_secret(data_dir: Path) -> Secret:
    """The key that signs session cookies, made once per data dir (0600) so sign-ins survive a restart."""
    path = data_dir / SECRET_FILE
    try:
        return Secret(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key + "\n")
    return Secret(key)


@dataclass(frozen=True)
class DashboardConfig:
    data_dir: Path
    database_url: str | None = field(default=None, repr=False)  # None: SQLite in data_dir; repr: a password
    policy: Path = DEFAULT_POLICY
    lists: tuple[Path, ...] = (SHIPPED_LISTS,)
    metrics_url: str | None = None
    # Behind TLS (a reverse proxy at school) the cookie must say Secure; on loopback it cannot.
    secure_cookies: bool = False
    session_hours: int = 10  # one school day: a teacher signs in once in the morning
    login_failures: int = 5  # failed sign-ins per name or address ...
    login_window: float = 900.0  # ... within this many seconds before sign-in is refused for a while
    live_interval: float = 0.5  # how often the live list looks for new events (seconds)
    session_secret: Secret = field(default=Secret(""), repr=False)
    # Testing only (`klaswacht run --fake-clock`): the timetable's clock starts here and runs on, as in the proxy.
    fake_clock: datetime | None = None
    _started: float = field(default_factory=time.monotonic, repr=False)

    def timetable_now(self) -> datetime:
        """The instant the timetable is read at (the period, the end of this lesson): aware, UTC."""
        if self.fake_clock is None:
            return datetime.now(UTC)
        return (self.fake_clock + timedelta(seconds=time.monotonic() - self._started)).astimezone(UTC)
