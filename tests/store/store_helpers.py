"""Helpers of the store tests (a module of its own: conftest.py files cannot be imported by name)."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime
from pathlib import Path

from klaswacht.store import Event


def event(n: int = 0, *, action: str = "block", client: str = "p-0123456789abcdef", group: str = "groep 7",
          severity: str | None = None, time: datetime | None = None, category: str = "sex") -> Event:
    """A blocked search, numbered by its term so each one can be found again."""
    extra = {"time": time} if time is not None else {}
    return Event(action, "search-words", category, "www.google.com", (f"term{n}",), client, group, severity, **extra)


def query(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows read with the stdlib sqlite3 module: independent of the store's own code."""
    with contextlib.closing(sqlite3.connect(data_dir / "klaswacht.db")) as connection:
        return connection.execute(sql).fetchall()


def count_rows(data_dir: Path, table: str = "events") -> int:
    return int(query(data_dir, f"SELECT COUNT(*) FROM {table}")[0][0])


def terms_stored(data_dir: Path) -> set[str]:
    """The numbered terms of all stored events: which events arrived, each exactly once."""
    rows = query(data_dir, "SELECT terms FROM events")
    found = [str(r[0])[2:-2] for r in rows]
    assert len(found) == len(set(found)), "an event was stored twice"
    return set(found)
