"""The store on PostgreSQL under trouble (server stopped, a lock held by another session), and what only the
PostgreSQL adapter does: placeholders, error classes, a NUL in text, a password never shown."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from postgres_server import Cluster
from store_helpers import count_rows, database_url, event, make_store, query, terms_stored

from klaswacht.store import Event, Store, StoreError, StoreUnavailable
from klaswacht.store.model import now_utc
from klaswacht.store.postgres import _placeholders, classify, redact

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "proxy"))
from proxy_helpers import fetch, start, until

pytestmark = pytest.mark.postgresql_only
SECRET_URL = "postgresql://klaswacht:s3cret-Pw0rd@127.0.0.1:1/klaswacht?connect_timeout=2"


def test_server_stopped_events_spill_and_are_replayed_when_it_is_back(data_dir: Path, postgres: Cluster) -> None:
    """While the server is down events go to the spill file; when it is back the store reconnects and replays."""

    async def main() -> None:
        async with make_store(data_dir, queue_bound=100, batch_interval=0.02) as store:
            store.record(event(0))
            assert await store.flush()
            postgres.stop("fast")
            try:
                for n in range(1, 401):
                    store.record(event(n))
                    if n % 20 == 0:
                        await asyncio.sleep(0.01)
                while store.unavailable is None:
                    await asyncio.sleep(0.01)
                assert store.unavailable.reason == "gone"
                assert store.counters["spilled"] > 0
            finally:
                postgres.start()
            assert await store.flush(timeout=30)
            assert store.unavailable is None
            assert store.counters["replayed"] == store.counters["spilled"] and store.counters["dropped"] == 0
            grant = await store.grant("juf", "groep 7", "social", now_utc() + timedelta(minutes=5))
            assert grant

    asyncio.run(main())
    assert terms_stored(data_dir) == {f"term{n}" for n in range(401)}
    assert not list((data_dir / "spill").glob("*"))


def test_a_store_started_while_the_server_is_down_connects_when_it_is_up(data_dir: Path, postgres: Cluster) -> None:
    """The proxy starts (strict=False) without its database; events wait and arrive once the server runs."""

    async def main() -> None:
        postgres.stop("fast")
        try:
            store = make_store(data_dir, batch_interval=0.02)
            await store.open(strict=False)
            for n in range(50):
                store.record(event(n))
            await asyncio.sleep(0.3)
        finally:
            postgres.start()
        try:
            assert await store.flush(timeout=30)
        finally:
            await store.close()

    asyncio.run(main())
    assert terms_stored(data_dir) == {f"term{n}" for n in range(50)}


def test_a_lock_held_by_another_session_is_busy_and_nothing_is_lost(data_dir: Path) -> None:
    """Another session locks the events table for 2 s: writes fail as busy, events spill, all arrive after."""
    url = database_url(data_dir)
    assert url

    async def main() -> None:
        async with make_store(data_dir, queue_bound=100, batch_interval=0.02) as store:
            with psycopg.connect(url) as other:
                other.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # held until this transaction ends
                try:
                    for n in range(300):
                        store.record(event(n))
                        if n % 10 == 0:
                            await asyncio.sleep(0.01)
                    while store.unavailable is None:
                        await asyncio.sleep(0.01)
                    assert store.unavailable.reason == "busy"
                    assert store.counters["spilled"] > 0
                    assert (await store.refresh_snapshot()).taken  # readers are not blocked by the lock
                finally:
                    other.rollback()
            assert await store.flush(timeout=15)
            assert store.unavailable is None and store.counters["dropped"] == 0

    asyncio.run(main())
    assert terms_stored(data_dir) == {f"term{n}" for n in range(300)}


def test_staff_action_waits_out_a_short_lock(data_dir: Path) -> None:
    """A staff action behind another session's lock waits (up to staff_timeout), not fails."""
    url = database_url(data_dir)
    assert url

    async def main() -> None:
        async with make_store(data_dir, busy_timeout=0.05) as store:
            with psycopg.connect(url) as other:
                other.execute("LOCK TABLE audit IN EXCLUSIVE MODE")
                try:
                    grant = asyncio.create_task(store.grant("juf", "groep 7", "social",
                                                            now_utc() + timedelta(minutes=1)))
                    await asyncio.sleep(0.5)
                    assert not grant.done()
                finally:
                    other.commit()
            assert await grant

    asyncio.run(main())


def test_misuse_is_a_store_error_and_text_with_percent_or_nul_is_kept(data_dir: Path) -> None:
    """A constraint or a syntax error is StoreError (not an outage); `%` in SQL and NUL in text do no harm."""

    async def main() -> None:
        async with make_store(data_dir) as store:
            await store.db.execute("INSERT INTO groups (school, name) VALUES (?, ?)", ("a", "groep 7"))
            with pytest.raises(StoreError) as refused:
                await store.db.execute("INSERT INTO groups (school, name) VALUES (?, ?)", ("a", "groep 7"))
            assert not isinstance(refused.value, StoreUnavailable)
            with pytest.raises(StoreError) as refused:
                await store.db.fetchall("SELEKT 1")
            assert not isinstance(refused.value, StoreUnavailable)
            rows = await store.db.fetchall("SELECT name FROM groups WHERE name LIKE '%7' AND name <> '?' "
                                           "AND name LIKE ?", ("groep%",))
            assert rows == [{"name": "groep 7"}]
            store.record(Event("block", "search-words", "a\x00b", "www.google.com", ("100%",),
                               "p-0123456789abcdef", "groep 7"))
            assert await store.flush()
            assert [(e["category"], e["terms"]) async for e in store.events()] == [("a\ufffdb", ["100%"])]
            assert store.unavailable is None

    asyncio.run(main())
    assert count_rows(data_dir) == 1


def test_placeholders_and_error_classes() -> None:
    assert _placeholders("SELECT '?', \"a?\" FROM t WHERE x LIKE '5%' AND y = ?") == \
        "SELECT '?', \"a?\" FROM t WHERE x LIKE '5%%' AND y = %s"
    for error, reason in ((psycopg.errors.LockNotAvailable("x"), "busy"),
                          (psycopg.errors.DeadlockDetected("x"), "busy"),
                          (psycopg.errors.DiskFull("x"), "full"),
                          (psycopg.errors.AdminShutdown("x"), "gone"),
                          (psycopg.errors.ConnectionFailure("x"), "gone"),
                          (psycopg.OperationalError("the connection is closed"), "gone"),
                          (psycopg.errors.IoError("x"), "io")):
        classified = classify(error)
        assert isinstance(classified, StoreUnavailable) and classified.reason == reason, error
    for error in (psycopg.errors.UniqueViolation("x"), psycopg.errors.SyntaxError("x")):
        assert not isinstance(classify(error), StoreUnavailable)


def test_the_password_of_the_url_is_never_shown(tmp_path: Path) -> None:
    """Not in the adapter's repr, not in the error of a failed connection, not in a command's message."""
    assert redact(SECRET_URL) == "postgresql://klaswacht:***@127.0.0.1:1/klaswacht?connect_timeout=2"
    assert "hush" not in redact("postgresql:///klaswacht?host=/run/postgresql&password=hush")

    async def main() -> None:
        store = Store(tmp_path / "data", database_url=SECRET_URL)
        assert "s3cret" not in repr(store.db)
        with pytest.raises(StoreUnavailable) as failed:
            await store.open()
        assert failed.value.reason == "gone"
        assert "s3cret" not in str(failed.value) and "s3cret" not in repr(failed.value)
        assert failed.value.__cause__ is None and "s3cret" not in str(failed.value.__context__)

    asyncio.run(main())
    with pytest.raises(StoreError, match="not a PostgreSQL URL"):
        Store(tmp_path / "data", database_url="mysql://root:s3cret@db/x")
    result = subprocess.run([str(Path(sys.executable).parent / "klaswacht"), "events", "--data-dir",
                             str(tmp_path / "data"), "--database", SECRET_URL],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and "klaswacht:" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout


@pytest.mark.slow
def test_klaswacht_run_with_database_keeps_the_events_on_the_server(data_dir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`klaswacht run --database URL`: the proxy records on the server, no process makes a SQLite file."""
    url = database_url(data_dir)
    assert url
    monkeypatch.delenv("KLASWACHT_DATABASE")  # the option alone
    running = start(data_dir, "--period", "lesson", "--database", url)
    try:
        status, _ = fetch(running.proxy, "http://www.google.com/search?q=kankerjuf")
        assert status == 403
        assert until(lambda: query(data_dir, "SELECT COUNT(*) FROM events WHERE action = 'block'") != [(0,)], 10)
    finally:
        assert running.stop() == 0, running.stderr
    assert "s3cret" not in running.stderr and url not in running.stderr
    assert not (data_dir / "klaswacht.db").exists()
    assert (data_dir / "secret.key").exists()
