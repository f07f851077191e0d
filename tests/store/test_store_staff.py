"""Staff actions and the snapshot the proxy decides from: grants, bans, accounts, roster, audit."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest
from store_helpers import make_store, query

from klaswacht.store import Event, StoreError, StoreUnavailable
from klaswacht.store.model import now_utc
from klaswacht.store.roster import RosterRow


def test_a_grant_made_elsewhere_is_in_force_within_two_seconds(data_dir: Path) -> None:
    """A grant written by another store (the dashboard) reaches the proxy's snapshot within 2 s."""

    async def main() -> None:
        async with make_store(data_dir) as proxy, make_store(data_dir) as dashboard:
            assert proxy.snapshot().grants_for("groep 7", now_utc()) == frozenset()
            await dashboard.grant("juf", "groep 7", "youtube.com", now_utc() + timedelta(minutes=30))
            started = time.monotonic()
            while not proxy.snapshot().grants_for("groep 7", now_utc()):
                assert time.monotonic() - started < 2
                await asyncio.sleep(0.05)

    asyncio.run(main())


def test_snapshot_holds_grants_bans_and_roster_and_ends_them_on_time(data_dir: Path) -> None:
    """The snapshot maps devices to pupils and pupils to groups; grants and bans end at their time."""

    async def main() -> None:
        async with make_store(data_dir) as store:
            await store.import_roster("admin", [RosterRow("1001", "Anna", "groep 7", ("10.0.7.11",))])
            anna = store.pseudonyms.pupil("1001")
            now = now_utc()
            await store.grant("juf", "groep 7", "social", now + timedelta(minutes=10))
            await store.ban("juf", "1001", now + timedelta(minutes=5))
            snapshot = await store.refresh_snapshot()
            assert snapshot.pupil_at("10.0.7.11") == anna and snapshot.group_of(anna) == "groep 7"
            assert store.client_for("10.0.7.11") == anna
            assert store.client_for("10.0.9.9") == store.pseudonyms.device("10.0.9.9")
            assert snapshot.banned(anna, now + timedelta(minutes=4))
            assert not snapshot.banned(anna, now + timedelta(minutes=6))
            assert snapshot.grants_for("groep 7", now + timedelta(minutes=9)) == {"social"}
            assert snapshot.grants_for("groep 7", now + timedelta(minutes=11)) == frozenset()
            with pytest.raises(TypeError):
                snapshot.bans[anna] = now  # type: ignore[index]

    asyncio.run(main())


def test_lifting_ends_a_grant_or_ban_now_and_is_audited(data_dir: Path) -> None:
    """lift() ends a grant or ban at once; the snapshot no longer has it."""

    async def main() -> None:
        async with make_store(data_dir) as store:
            grant = await store.grant("juf", "groep 7", "social", now_utc() + timedelta(minutes=10))
            ban = await store.ban("juf", "1001", now_utc() + timedelta(minutes=10))
            assert await store.lift("juf", "grant", grant) and await store.lift("juf", "ban", ban)
            assert not await store.lift("juf", "ban", ban)
            snapshot = await store.refresh_snapshot()
            assert snapshot.grants_for("groep 7", now_utc()) == frozenset() and not snapshot.bans
            assert await store.active("grant") == [] and await store.active("ban") == []

    asyncio.run(main())
    assert sorted(r[0] for r in query(data_dir, "SELECT action FROM audit")) == [
        "ban", "grant", "lift-ban", "lift-ban", "lift-grant"]


@pytest.mark.sqlite_only  # SQLite's own failure; the PostgreSQL counterpart is in test_store_postgres.py
def test_the_last_snapshot_stays_when_the_database_is_unreadable(data_dir: Path) -> None:
    """A database replaced by a broken file fails the refresh; the proxy keeps deciding from the last snapshot."""

    async def main() -> None:
        async with make_store(data_dir, snapshot_interval=0.05) as store:
            await store.grant("juf", "groep 7", "social", now_utc() + timedelta(minutes=10))
            await store.refresh_snapshot()
            broken = data_dir / "broken"
            broken.write_bytes(b"this is not a database" * 100)
            broken.replace(data_dir / "klaswacht.db")
            for stale in ("klaswacht.db-wal", "klaswacht.db-shm"):  # a botched restore copies the main file only
                (data_dir / stale).unlink()
            with pytest.raises(StoreUnavailable):
                await store.refresh_snapshot()
            await asyncio.sleep(0.2)  # background refreshes fail too
            assert store.snapshot().grants_for("groep 7", now_utc()) == {"social"}

    asyncio.run(main())


def test_staff_accounts_keep_an_argon2_hash_and_verify_passwords(data_dir: Path) -> None:
    """users add stores an argon2 hash (never the password); verify accepts the right password only."""

    async def main() -> None:
        async with make_store(data_dir) as store:
            await store.add_user("admin", "juf Els", "teacher", "geheim wachtwoord", ["groep 7", "groep 8"])
            staff = await store.verify_user("juf Els", "geheim wachtwoord")
            assert staff is not None and staff.role == "teacher" and staff.groups == {"groep 7", "groep 8"}
            assert await store.verify_user("juf Els", "fout") is None
            assert await store.verify_user("niemand", "geheim wachtwoord") is None
            with pytest.raises(StoreError, match="exists"):
                await store.add_user("admin", "juf Els", "teacher", "x")
            with pytest.raises(StoreError, match="role"):
                await store.add_user("admin", "meester", "director", "x")
            with pytest.raises(StoreError, match="actor"):
                await store.grant("", "groep 7", "social", now_utc() + timedelta(minutes=1))

    asyncio.run(main())
    (password,) = query(data_dir, "SELECT password FROM staff")[0]
    assert str(password).startswith("$argon2") and "geheim" not in str(password)
    assert query(data_dir, "SELECT actor, action, target FROM audit") == [("admin", "user-add", "juf Els")]


@pytest.mark.sqlite_only  # SQLite's own failure; the PostgreSQL counterpart is in test_store_postgres.py
def test_staff_action_waits_out_a_short_lock(data_dir: Path) -> None:
    """A staff action on a database briefly locked by another connection waits (up to staff_timeout), not fails."""

    async def main() -> None:
        async with make_store(data_dir, busy_timeout=0.05) as store:
            with contextlib.closing(sqlite3.connect(data_dir / "klaswacht.db", isolation_level=None)) as other:
                other.execute("BEGIN IMMEDIATE")  # another writer (the dashboard's process) holds the lock 0.5 s
                try:
                    grant = asyncio.create_task(store.grant("juf", "groep 7", "social",
                                                            now_utc() + timedelta(minutes=1)))
                    await asyncio.sleep(0.5)
                    assert not grant.done()  # busy_timeout (0.05 s) passed several times: it retried
                finally:
                    other.execute("COMMIT")
            assert await grant

    asyncio.run(main())


def test_two_teachers_answering_one_request_at_once_make_one_grant(data_dir: Path) -> None:
    """The answer that closes a pupil's request makes its grant in the same transaction: of two answers at once
    (two dashboards), one closes it and grants, the other finds it closed and writes nothing; a refused or
    unknown request makes no grant, and an answer to something that is not a request changes nothing."""
    until = now_utc() + timedelta(minutes=30)

    async def main() -> None:
        async with make_store(data_dir) as one, make_store(data_dir) as other:
            one.record(Event("request", "closed-category", "social", "tiktok.com", (), "p-0123456789abcdef",
                             "groep 7"))
            one.record(Event("request", "closed-category", "social", "snapchat.com", (), "p-0123456789abcdef",
                             "groep 7"))
            one.record(Event("block", "closed-category", "social", "tiktok.com", (), "p-0123456789abcdef",
                             "groep 7"))
            assert await one.flush()
            items = {(e["action"], e["host"]): e["id"] for e in await one.feed(since=now_utc() - timedelta(hours=1))}
            tiktok, snapchat = items[("request", "tiktok.com")], items[("request", "snapchat.com")]
            answers = await asyncio.gather(
                one.answer_request("juf", tiktok, "granted", ("groep 7", "tiktok.com", until)),
                other.answer_request("meester", tiktok, "granted", ("groep 7", "tiktok.com", until)))
            assert sorted(answers) == [False, True]
            assert not await one.answer_request("juf", tiktok, "refused")
            assert await other.answer_request("meester", snapchat, "refused")
            assert not await one.answer_request("juf", items[("block", "tiktok.com")], "granted",
                                                ("groep 7", "tiktok.com", until))
            with pytest.raises(StoreError, match="only a granted"):
                await one.answer_request("juf", snapchat, "refused", ("groep 7", "snapchat.com", until))

    asyncio.run(main())
    grants = query(data_dir, "SELECT group_name, what, actor FROM grants")
    assert len(grants) == 1 and grants[0][:2] == ("groep 7", "tiktok.com")
    closed = dict(query(data_dir, "SELECT answer, changed_by FROM alerts WHERE state = 'closed'"))
    assert closed == {"granted": grants[0][2], "refused": "meester"}
    audit = sorted(str(row[0]) for row in query(data_dir, "SELECT action FROM audit"))
    assert audit == ["alert-state", "alert-state", "grant"]
