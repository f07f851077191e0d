"""Schools of a board in one database: each school's store writes its own rows and reads only those
(issue 7, point 5); a database of schema 4 moves into the default school with all its data."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import timedelta
from pathlib import Path

import pytest
from store_helpers import event, make_database, make_store, query

from klaswacht.store import Event, Store, StoreError
from klaswacht.store.model import now_utc
from klaswacht.store.privacy import load_secret
from klaswacht.store.roster import RosterRow
from klaswacht.store.schema import LATEST, migrate

# The same group, pupil number and device address at both schools: nothing may mix.
ANNA = RosterRow("1001", "Anna A", "groep 7", ("10.20.7.11",))
BRAM = RosterRow("1001", "Bram B", "groep 7", ("10.20.7.11",))


async def _fill(store: Store, pupil: RosterRow, tag: str) -> dict[str, str]:
    """One school's day: a roster, a grant, a ban, a block, an alert, a search and a dry-run text."""
    now = now_utc()
    await store.import_roster(f"admin-{tag}", [pupil])
    pid = store.pupil_id(pupil.number)
    grant = await store.grant(f"juf-{tag}", "groep 7", f"{tag}.example", now + timedelta(minutes=30))
    ban = await store.ban(f"juf-{tag}", pupil.number, now + timedelta(minutes=30))
    store.record(Event("block", "search-words", "sex", "www.google.com", (f"term-{tag}",), pid, "groep 7"))
    store.record(Event("alert", "search-words", "self-harm", "www.google.com", (f"alert-{tag}",), pid, "groep 7",
                       "severe"))
    store.record(Event("search", "search", host="www.google.com", group="groep 7"))
    store.record(Event("seen-search", "seen", text=f"query {tag}"))
    assert await store.flush()
    [block] = [e for e in [e async for e in store.events()] if e["action"] == "block"]
    [alert] = await store.alerts()
    await store.add_user(f"admin-{tag}", f"juf-{tag}", "teacher", "geheim-wachtwoord", ["groep 7"])
    return {"pid": pid, "grant": grant, "ban": ban, "block": block["id"], "alert": alert["id"]}


def test_two_schools_in_one_database_each_see_only_their_own(data_dir: Path) -> None:
    """Events, alerts, the live list, pupils, groups, accounts, counts, the dry run and the audit log of a
    school are its own; the snapshot applies only its own grants, bans and devices."""

    async def main() -> None:
        async with make_store(data_dir, school="noord") as a, make_store(data_dir, school="zuid") as b:
            mine, theirs = await _fill(a, ANNA, "noord"), await _fill(b, BRAM, "zuid")
            assert mine["pid"] != theirs["pid"]  # pupil 1001 of one school is not pupil 1001 of the other
            since = now_utc() - timedelta(hours=1)
            for store, own, tag, name in ((a, mine, "noord", "Anna A"), (b, theirs, "zuid", "Bram B")):
                events = [e async for e in store.events()]
                assert {e["school"] for e in events} == {tag} and {e["client"] for e in events} == {own["pid"]}
                assert [r["id"] for r in await store.alerts()] == [own["alert"]]
                feed = await store.feed(since=since)
                assert {i["id"] for i in feed} == {own["block"], own["alert"]}
                assert {i["pupil_name"] for i in feed} == {name}
                assert await store.feed_item(own["block"]) is not None
                assert [(p["id"], p["name"]) for p in await store.pupils()] == [(own["pid"], name)]
                assert await store.group_names() == ["groep 7"]
                assert [u["name"] for u in await store.users()] == [f"juf-{tag}"]
                assert {r["group_name"] for r in await store.daily_counts(since)} == {"groep 7"}
                assert sum(r["count"] for r in await store.daily_counts(since)) == 2
                assert [r["count"] for r in await store.search_counts()] == [1]
                assert await store.seen("2000-01-01") == ({f"query {tag}": 1}, {})
                assert [r["id"] for r in await store.active("grant")] == [own["grant"]]
                assert [r["id"] for r in await store.active("ban")] == [own["ban"]]
                assert {r["actor"] for r in await store.audit_log()} == {f"admin-{tag}", f"juf-{tag}"}
                snapshot = await store.refresh_snapshot()
                assert snapshot.grants_for("groep 7", now_utc()) == {f"{tag}.example"}
                assert dict(snapshot.bans).keys() == {own["pid"]}
                assert snapshot.pupil_at("10.20.7.11") == own["pid"] == store.client_for("10.20.7.11")
            # Nor are device ids of unknown devices the same at two schools.
            assert a.client_for("10.20.9.9") != b.client_for("10.20.9.9")
            # The store's own table of accounts knows to which school each belongs.
            assert (await a.staff("juf-zuid")).school == "zuid"  # type: ignore[union-attr]

    asyncio.run(main())


def test_changes_by_id_of_another_school_are_refused_and_change_nothing(data_dir: Path) -> None:
    """Marking, closing or answering an item, lifting a grant or ban, or changing an account of another
    school finds nothing: False, and the other school's rows are as they were."""

    async def main() -> None:
        async with make_store(data_dir, school="noord") as a, make_store(data_dir, school="zuid") as b:
            await _fill(a, ANNA, "noord")
            theirs = await _fill(b, BRAM, "zuid")
            assert await a.feed_item(theirs["block"]) is None
            assert not await a.set_alert("juf-noord", theirs["block"], "closed", "niet van ons")
            assert not await a.set_alert("juf-noord", theirs["alert"], "closed", answer="granted")
            assert not await a.lift("juf-noord", "grant", theirs["grant"])
            assert not await a.lift("juf-noord", "ban", theirs["ban"])
            assert not await a.update_user("admin-noord", "juf-zuid", role="admin", password="overgenomen!")
            assert [(r["id"], r["state"], r["note"]) for r in await b.alerts(states=("new", "seen", "closed"))] == [
                (theirs["alert"], "new", None)]
            assert query(data_dir, f"SELECT COUNT(*) FROM alerts WHERE id = '{theirs['block']}'") == [(0,)]
            assert [r["id"] for r in await b.active("grant")] == [theirs["grant"]]
            assert [r["id"] for r in await b.active("ban")] == [theirs["ban"]]
            assert (await b.staff("juf-zuid")).role == "teacher"  # type: ignore[union-attr]
            assert await b.verify_user("juf-zuid", "geheim-wachtwoord") is not None
            # The same changes in their own school work.
            assert await b.set_alert("juf-zuid", theirs["block"], "closed", "gezien")
            assert await b.lift("juf-zuid", "grant", theirs["grant"])

    asyncio.run(main())


def test_export_forget_and_purge_stay_in_their_school(data_dir: Path) -> None:
    """Pupil 1001's export and forget at one school touch nothing of pupil 1001 at the other; a school's
    purge removes only its own old rows."""

    async def main() -> None:
        async with make_store(data_dir, school="noord") as a, make_store(data_dir, school="zuid") as b:
            mine, theirs = await _fill(a, ANNA, "noord"), await _fill(b, BRAM, "zuid")
            export = await a.export_pupil("admin-noord", "1001")
            assert export["id"] == mine["pid"] and export["pupil"]["name"] == "Anna A"
            assert {e["school"] for e in export["events"]} == {"noord"} and len(export["bans"]) == 1
            removed = await a.forget_pupil("admin-noord", "1001")
            assert removed["pupils"] == 1 and removed["events"] == 2
            assert await a.pupils() == []
            assert [p["name"] for p in await b.pupils()] == ["Bram B"]
            assert len([e async for e in b.events()]) == 2
            old = now_utc() - timedelta(days=400)
            for store in (a, b):
                store.record(event(9, time=old))
                assert await store.flush()
            removed = await a.purge()
            assert removed["events"] == 1 and removed["audit"] == 0
            assert query(data_dir, "SELECT school, COUNT(*) FROM events GROUP BY school ORDER BY school") == [
                ("zuid", 3)]
            assert theirs["pid"] == b.pupil_id("1001")

    asyncio.run(main())


def test_the_boards_view_reads_every_school_and_changes_none(data_dir: Path) -> None:
    """scoped(None) reads all schools (counts per school), makes board accounts of IT or admin only, and
    refuses to change a school's data; a school's store makes no board account."""

    async def main() -> None:
        async with make_store(data_dir, school="noord") as a, make_store(data_dir, school="zuid") as b:
            await _fill(a, ANNA, "noord")
            await _fill(b, BRAM, "zuid")
            board = a.scoped(None)
            assert a.scoped("noord") is a and b.scoped("noord").school == "noord"
            since = now_utc() - timedelta(hours=1)
            assert {e["school"] async for e in board.events()} == {"noord", "zuid"}
            counts = await board.daily_counts(since)
            assert {(r["group_name"], r["count"]) for r in counts if r["action"] == "block"} == {
                ("noord", 1), ("zuid", 1)}
            await board.add_user("cli:root", "ict-bestuur", "it", "geheim-wachtwoord", board=True)
            assert (await a.staff("ict-bestuur")).school is None  # type: ignore[union-attr]
            assert {u["name"]: u["school"] for u in await board.users()} == {
                "juf-noord": "noord", "juf-zuid": "zuid", "ict-bestuur": None}
            assert [u["name"] for u in await a.users()] == ["juf-noord"]
            await board.note_action("ict-bestuur", "login")
            assert {r["school"] for r in await board.audit_log()} == {"noord", "zuid", None}
            assert "login" not in {r["action"] for r in await a.audit_log()}
            with pytest.raises(StoreError, match="board"):
                await board.add_user("cli:root", "meester", "teacher", "geheim-wachtwoord", board=True)
            with pytest.raises(StoreError, match="board"):
                await a.add_user("cli:root", "ict-2", "it", "geheim-wachtwoord", board=True)
            with pytest.raises(StoreError, match="needs a school"):
                await board.grant("ict-bestuur", "groep 7", "social", now_utc() + timedelta(minutes=5))
            with pytest.raises(StoreError, match="needs a school"):
                await board.add_user("cli:root", "x", "it", "geheim-wachtwoord")
            with pytest.raises(StoreError, match="not a school id"):
                a.scoped("Zuid")
            with pytest.raises(StoreError, match="not a school id"):
                make_store(data_dir, school="")

    asyncio.run(main())


def test_a_schema_4_database_moves_into_the_default_school_with_all_its_data(data_dir: Path) -> None:
    """Every table of a version-4 database keeps its rows, now in the default school: the default store
    sees them (the snapshot too, pupil ids unchanged), another school's store sees none of them."""

    async def make_v4() -> None:
        db = make_database(data_dir)
        await db.open()
        try:
            assert await migrate(db, upto=4) == 4
            now, later = "2030-01-01T09:00:00.000Z", "2999-01-01T00:00:00.000Z"
            for sql, params in (
                ("INSERT INTO events (id, time, action, rule, category, host, terms, client, group_name, severity) "
                 "VALUES (?, ?, 'alert', 'search-words', 'self-harm', 'www.google.com', '[\"x\"]', ?, 'groep 7', "
                 "'severe')", ("e1", now, pid)),
                ("INSERT INTO alerts (id, time, client, group_name, severity, state) "
                 "VALUES ('e1', ?, ?, 'groep 7', 'severe', 'new')", (now, pid)),
                ("INSERT INTO search_counts (day, group_name, engine, count) VALUES ('2030-01-01', 'groep 7', "
                 "'www.google.com', 3)", ()),
                ("INSERT INTO seen_searches (day, query, count) VALUES ('2030-01-01', 'kikkers', 2)", ()),
                ("INSERT INTO seen_hosts (day, host, count) VALUES ('2030-01-01', 'kikkers.nl', 4)", ()),
                ("INSERT INTO grants (id, group_name, what, starts, until, actor) "
                 "VALUES ('g1', 'groep 7', 'social', '2000-01-01T00:00:00.000Z', ?, 'juf')", (later,)),
                ("INSERT INTO bans (id, pupil, starts, until, reason, actor) "
                 "VALUES ('b1', ?, '2000-01-01T00:00:00.000Z', ?, 'r', 'juf')", (pid, later)),
                ("INSERT INTO groups (name) VALUES ('groep 7')", ()),
                ("INSERT INTO pupils (id, number, name, group_name) VALUES (?, '1001', 'Anna', 'groep 7')", (pid,)),
                ("INSERT INTO devices (address, pupil) VALUES ('10.20.7.11', ?)", (pid,)),
                ("INSERT INTO staff (name, role, password) VALUES ('juf', 'teacher', 'x')", ()),
                ("INSERT INTO staff_groups (staff, group_name) VALUES ('juf', 'groep 7')", ()),
                ("INSERT INTO audit (id, time, actor, action, target, detail) VALUES ('a1', ?, 'juf', 'grant', "
                 "'groep 7', '{}')", (now,)),
            ):
                await db.execute(sql, params)
        finally:
            await db.close()

    async def open_current() -> None:
        async with make_store(data_dir) as store, make_store(data_dir, school="zuid") as other:
            assert store.school == "default" and store.pupil_id("1001") == pid
            assert [e["id"] async for e in store.events()] == ["e1"]
            assert [a["id"] for a in await store.alerts()] == ["e1"]
            assert [(r["group_name"], r["count"]) for r in await store.search_counts()] == [("groep 7", 3)]
            assert await store.seen("2000-01-01") == ({"kikkers": 2}, {"kikkers.nl": 4})
            assert [p["name"] for p in await store.pupils()] == ["Anna"]
            assert await store.group_names() == ["groep 7"]
            assert [(u["name"], u["school"], u["groups"]) for u in await store.users()] == [
                ("juf", "default", ["groep 7"])]
            assert [r["actor"] for r in await store.audit_log()] == ["juf"]
            snapshot = store.snapshot()
            assert snapshot.pupil_at("10.20.7.11") == pid and snapshot.group_of(pid) == "groep 7"
            assert snapshot.grants_for("groep 7", now_utc()) == {"social"} and snapshot.banned(pid, now_utc())
            # The rows are the default school's, and nobody else's.
            assert [e async for e in other.events()] == [] and await other.pupils() == []
            assert await other.alerts() == [] and await other.users() == [] and await other.audit_log() == []
            assert other.snapshot().grants_for("groep 7", now_utc()) == frozenset()
            assert other.snapshot().pupil_at("10.20.7.11") is None
            # The roster can be imported again into the new keys: the same pupil is updated, not doubled.
            await store.import_roster("admin", [RosterRow("1001", "Anna de Vries", "groep 8", ("10.20.7.11",))])
            assert [(p["id"], p["name"]) for p in await store.pupils()] == [(pid, "Anna de Vries")]

    data_dir.mkdir()
    # The id as klaswacht made it before schools: a pupil of the default school keeps it.
    secret = load_secret(data_dir / "secret.key")
    pid = "p-" + hmac.new(secret, b"pupil:1001", hashlib.sha256).hexdigest()[:16]
    asyncio.run(make_v4())
    asyncio.run(open_current())
    assert query(data_dir, "SELECT MAX(version) FROM schema_version") == [(LATEST,)]
    for table in ("events", "alerts", "search_counts", "seen_searches", "seen_hosts", "grants", "bans", "groups",
                  "pupils", "devices", "staff", "audit"):
        assert query(data_dir, f"SELECT DISTINCT school FROM {table}") == [("default",)], table
