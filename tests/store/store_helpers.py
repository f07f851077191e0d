"""Helpers of the store tests (a module of its own: conftest.py files cannot be imported by name)."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from klaswacht.store import Event, Store
from klaswacht.store.postgres import PostgresDatabase
from klaswacht.store.sqlite import SqliteDatabase

# The PostgreSQL URL of each data dir whose test runs against PostgreSQL (set by conftest.data_dir).
DATABASES: dict[Path, str] = {}


def database_url(data_dir: Path) -> str | None:
    """The test's PostgreSQL database, or None when it runs against SQLite."""
    return DATABASES.get(Path(data_dir))


def make_store(data_dir: Path, **options: Any) -> Store:
    """A Store on the test's backend: the SQLite file in `data_dir`, or the test's PostgreSQL database."""
    return Store(data_dir, database_url=database_url(data_dir), **options)


def make_database(data_dir: Path) -> SqliteDatabase | PostgresDatabase:
    """The bare adapter (no store) on the test's backend."""
    url = database_url(data_dir)
    return PostgresDatabase(url) if url else SqliteDatabase(data_dir / "klaswacht.db")


def event(n: int = 0, *, action: str = "block", client: str = "p-0123456789abcdef", group: str = "groep 7",
          severity: str | None = None, time: datetime | None = None, category: str = "sex") -> Event:
    """A blocked search, numbered by its term so each one can be found again."""
    extra = {"time": time} if time is not None else {}
    return Event(action, "search-words", category, "www.google.com", (f"term{n}",), client, group, severity, **extra)


def query(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows read with the stdlib sqlite3 module (or plain psycopg): independent of the store's own code."""
    url = database_url(data_dir)
    if url:
        with psycopg.connect(url) as pg:
            return [tuple(row) for row in pg.execute(sql).fetchall()]
    with contextlib.closing(sqlite3.connect(data_dir / "klaswacht.db")) as connection:
        return connection.execute(sql).fetchall()


def index_names(data_dir: Path) -> set[str]:
    if database_url(data_dir):
        return {str(r[0]) for r in query(data_dir, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    return {str(r[0]) for r in query(data_dir, "SELECT name FROM sqlite_master WHERE type = 'index'")}


def count_rows(data_dir: Path, table: str = "events") -> int:
    return int(query(data_dir, f"SELECT COUNT(*) FROM {table}")[0][0])  # type: ignore[call-overload]


def terms_stored(data_dir: Path) -> set[str]:
    """The numbered terms of all stored events: which events arrived, each exactly once."""
    rows = query(data_dir, "SELECT terms FROM events")
    found = [str(r[0])[2:-2] for r in rows]
    assert len(found) == len(set(found)), "an event was stored twice"
    return set(found)
