"""Versioned migrations: a database made by the first schema is upgraded in place, data kept."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from store_helpers import index_names, make_database, make_store, query

from klaswacht.store import StoreError
from klaswacht.store.database import Database
from klaswacht.store.schema import LATEST, MIGRATIONS, migrate


def test_database_of_the_first_schema_is_upgraded_with_its_data(data_dir: Path) -> None:
    """A v1 database with events, a pupil and a grant opens with today's code: data kept, schema current."""

    async def make_v1() -> None:
        db = make_database(data_dir)
        await db.open()
        try:
            await fill_v1(db)
        finally:
            await db.close()

    async def fill_v1(db: Database) -> None:
        assert await migrate(db, upto=1) == 1
        await db.execute("INSERT INTO events (id, time, action, rule, category, host, terms, client, group_name) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         ("e1", "2030-01-01T09:00:00.000Z", "block", "search-words", "sex", "www.google.com",
                          '["porn"]', "p-0123456789abcdef", "groep 7"))
        await db.execute("INSERT INTO pupils (id, number, name, group_name) "
                         "VALUES ('p-0123456789abcdef', '1001', 'Anna', 'groep 7')")
        await db.execute("INSERT INTO grants (id, group_name, what, starts, until, actor) "
                         "VALUES ('g1', 'groep 7', 'social', '2000-01-01T00:00:00.000Z', '2999-01-01T00:00:00.000Z', "
                         "'juf')")

    async def open_current() -> None:
        async with make_store(data_dir) as store:
            assert [e["terms"] async for e in store.events()] == [["porn"]]
            snapshot = store.snapshot()
            assert snapshot.group_of("p-0123456789abcdef") == "groep 7"
            assert snapshot.grants_for("groep 7", snapshot.taken) == {"social"}

    data_dir.mkdir()
    asyncio.run(make_v1())
    assert query(data_dir, "SELECT MAX(version) FROM schema_version") == [(1,)]
    asyncio.run(open_current())
    assert query(data_dir, "SELECT version FROM schema_version ORDER BY version") == [
        (m.version,) for m in MIGRATIONS]
    assert {"events_time", "alerts_state", "bans_until"} <= index_names(data_dir)


def test_a_database_newer_than_the_code_is_refused(data_dir: Path) -> None:
    """An older klaswacht does not write into a schema it does not know."""

    async def main() -> None:
        async with make_store(data_dir):
            pass
        db = make_database(data_dir)
        await db.open()
        try:
            await db.execute("INSERT INTO schema_version (version, applied, description) VALUES (?, 'x', 'future')",
                             (LATEST + 1,))
        finally:
            await db.close()
        store = make_store(data_dir)
        try:
            with pytest.raises(StoreError, match="newer"):
                await store.open()
        finally:
            await store.close()  # a no-op after the refused open, which closed its connections itself

    asyncio.run(main())


def test_stores_opening_a_new_database_together_migrate_it_once(data_dir: Path) -> None:
    """Several processes (here: stores) starting at once apply every migration exactly once."""

    async def main() -> None:
        stores = [make_store(data_dir) for _ in range(4)]
        try:
            await asyncio.gather(*(s.open(background=False) for s in stores))
        finally:
            for store in stores:
                await store.close()

    asyncio.run(main())
    assert query(data_dir, "SELECT version FROM schema_version ORDER BY version") == [
        (m.version,) for m in MIGRATIONS]


def seconds_to_open_while_held(data: Path, *held: str) -> float:
    """How long a store takes to open `data` while another connection runs the statements `held` and keeps
    their lock for a second (past the 0.3 s busy timeout)."""
    data.mkdir()
    holder = sqlite3.connect(data / "klaswacht.db", isolation_level=None, check_same_thread=False)
    for statement in held:
        holder.execute(statement)
    release = threading.Timer(1.0, holder.rollback)
    release.start()

    async def main() -> None:
        store = make_store(data)
        try:
            await store.open(background=False)
        finally:
            await store.close()

    started = time.monotonic()
    try:
        asyncio.run(main())
    finally:
        release.join()
        holder.close()
    return time.monotonic() - started


def test_a_new_database_held_by_another_process_past_the_busy_timeout_is_waited_for(tmp_path: Path) -> None:
    """SQLite: a new database that another process holds (here: exclusively, for a second, before it is in WAL
    mode) delays a store's switch to WAL; it does not fail its start (seen on a busy machine: workers opening a
    new database together)."""
    data = tmp_path / "data"
    assert seconds_to_open_while_held(data, "BEGIN EXCLUSIVE", "CREATE TABLE early (x INTEGER)") > 0.9
    assert query(data, "PRAGMA journal_mode") == [("wal",)]


def test_a_migration_waits_for_a_schema_lock_held_past_the_busy_timeout(tmp_path: Path) -> None:
    """SQLite: another process holding the write lock for a second (past the 0.3 s busy timeout, as a worker
    migrating on a busy machine does) delays a store's first migration; it does not fail it."""
    data = tmp_path / "data"
    assert seconds_to_open_while_held(data, "PRAGMA journal_mode = WAL", "BEGIN IMMEDIATE") > 0.9
    assert query(data, "SELECT version FROM schema_version ORDER BY version") == [(m.version,) for m in MIGRATIONS]
