"""Privacy: pseudonymous ids, the right of access (export), the right to be forgotten, retention."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from store_helpers import count_rows, event, make_store, query

from klaswacht.store import Event
from klaswacht.store.model import now_utc
from klaswacht.store.privacy import Pseudonyms, is_id, load_secret
from klaswacht.store.roster import RosterRow


def test_secret_is_private_and_ids_are_stable_per_install(tmp_path: Path) -> None:
    """The secret is created 0600 once; ids depend on it, are short, and reveal no pupil number."""
    secret = load_secret(tmp_path / "secret.key")
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    assert load_secret(tmp_path / "secret.key") == secret
    ids = Pseudonyms(secret)
    assert ids.pupil("1001") == ids.pupil(" 1001 ") and is_id(ids.pupil("1001"))
    assert "1001" not in ids.pupil("1001") and ids.pupil("1001").startswith("p-")
    assert ids.device("10.0.7.11").startswith("d-") and ids.device("10.0.7.11") != ids.pupil("10.0.7.11")
    assert Pseudonyms(load_secret(tmp_path / "other.key")).pupil("1001") != ids.pupil("1001")
    assert ids.resolve(ids.pupil("1001")) == ids.pupil("1001") == ids.resolve("1001")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.key", "secret.key"]  # no temporary files left


def test_processes_starting_together_share_one_complete_secret(tmp_path: Path) -> None:
    """Workers creating the secret at the same moment all read the same full secret, none an empty file."""
    script = ("import sys; from pathlib import Path; from klaswacht.store.privacy import load_secret; "
              "print(load_secret(Path(sys.argv[1])).decode())")
    for attempt in range(5):
        path = tmp_path / f"secret{attempt}.key"
        procs = [subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(6)]
        results = [p.communicate(timeout=60) for p in procs]
        assert all(p.returncode == 0 for p in procs), [err for _, err in results]
        assert len({out for out, _ in results}) == 1


def test_export_gives_everything_about_one_pupil_and_forget_removes_it(data_dir: Path) -> None:
    """Export holds roster, devices, events, alerts, bans and audit of one pupil; forget removes all but the audit."""

    async def main() -> None:
        async with make_store(data_dir) as store:
            anna, bram = store.pseudonyms.pupil("1001"), store.pseudonyms.pupil("1002")
            await store.import_roster("admin", [RosterRow("1001", "Anna de Vries", "groep 7", ("10.0.7.11",)),
                                                RosterRow("1002", "Bram Jansen", "groep 7")])
            store.record(event(1, client=anna, severity="high"))
            store.record(event(2, client=bram))
            assert await store.flush()
            await store.ban("juf", "1001", now_utc() + timedelta(hours=1), "Anna pestte")

            exported = await store.export_pupil("directeur", "1001")
            assert exported["pupil"]["name"] == "Anna de Vries" and exported["devices"] == ["10.0.7.11"]
            assert [e["terms"] for e in exported["events"]] == [["term1"]]
            assert len(exported["alerts"]) == 1 and exported["bans"][0]["reason"] == "Anna pestte"
            assert [a["action"] for a in exported["audit"]] == ["ban"]
            json.dumps(exported)  # serialisable as is

            removed = await store.forget_pupil("directeur", anna)
            assert removed == {"alerts": 1, "events": 1, "bans": 1, "devices": 1, "pupils": 1, "device_alerts": 0,
                               "device_events": 0}
            after = await store.export_pupil("directeur", anna)
            assert (after["pupil"], after["events"], after["alerts"], after["bans"], after["devices"]) == (
                None, [], [], [], [])
            assert [e["client"] async for e in store.events()] == [bram]

    asyncio.run(main())
    audit = query(data_dir, "SELECT actor, action, target, detail FROM audit")
    assert sorted(a[1] for a in audit) == ["ban", "export", "export", "forget", "roster-import"]
    assert "Anna" not in repr(audit) and "pestte" not in repr(audit)
    assert count_rows(data_dir, "pupils") == 1


def test_export_and_forget_cover_what_a_device_did_before_the_roster_named_its_pupil(data_dir: Path) -> None:
    """Events recorded under a device's own id (no roster row yet) are the pupil's once the roster names the
    device: export lists them apart (they may include an earlier user of the address); forget removes them."""

    async def main() -> None:
        async with make_store(data_dir) as store:
            before, other = store.pseudonyms.device("10.0.7.11"), store.pseudonyms.device("10.0.7.12")
            store.record(event(1, client=before, severity="high"))
            store.record(event(2, client=other))
            assert await store.flush()
            await store.import_roster("admin", [RosterRow("1001", "Anna de Vries", "groep 7", ("10.0.7.11",))])
            exported = await store.export_pupil("directeur", "1001")
            assert exported["events"] == [] and exported["alerts"] == []
            assert [e["terms"] for e in exported["device_events"]] == [["term1"]]
            assert [a["client"] for a in exported["device_alerts"]] == [before]
            removed = await store.forget_pupil("directeur", "1001")
            assert (removed["device_events"], removed["device_alerts"], removed["devices"]) == (1, 1, 1)
            assert [e["client"] async for e in store.events()] == [other]  # another device's stay

    asyncio.run(main())


def test_purge_removes_what_is_older_than_the_retention(data_dir: Path) -> None:
    """Events, alerts and counts older than 28 days and audit rows older than a year are purged; newer stay."""
    now = now_utc()

    async def main() -> None:
        async with make_store(data_dir, events_days=28, audit_days=365) as store:
            store.record(event(1, time=now - timedelta(days=30), severity="low"))
            store.record(event(2, time=now - timedelta(days=1), severity="low"))
            store.record(event(3, action="search", time=now - timedelta(days=30)))
            for days in (8, 6):  # the dry run's searches and hosts are kept 7 days, not 28
                store.record(Event("seen-search", "none", time=now - timedelta(days=days), text=f"zoek {days}"))
                store.record(Event("seen-host", "none", host=f"site{days}.nl", time=now - timedelta(days=days)))
            assert await store.flush()
            await store.grant("juf", "groep 7", "social", now - timedelta(days=29), starts=now - timedelta(days=30))
            removed = await store.purge(now)
            assert removed == {"events": 1, "alerts": 1, "search_counts": 1, "grants": 1, "bans": 0, "audit": 0,
                               "seen_searches": 1, "seen_hosts": 1}
            assert await store.seen("2000-01-01") == ({"zoek 6": 1}, {"site6.nl": 1})
            assert [e["terms"] async for e in store.events()] == [["term2"]]
            assert (await store.purge(now + timedelta(days=366)))["audit"] == 1

    asyncio.run(main())


def test_the_hourly_purge_runs_only_in_the_store_that_is_told_to(data_dir: Path) -> None:
    """One process per gateway purges (`klaswacht run`'s first worker, proxy/worker.py): a store opened with
    purge=False leaves an old row to it; one opened with the default removes it by itself."""
    now = now_utc()

    async def left_after_opening(purge: bool) -> int:
        async with make_store(data_dir, purge=purge):
            for _ in range(50):  # the purge task runs at once, then every hour
                await asyncio.sleep(0.05)
                if not count_rows(data_dir):
                    break
        return count_rows(data_dir)

    async def main() -> None:
        async with make_store(data_dir, purge=False) as store:
            store.record(event(1, time=now - timedelta(days=30)))
            assert await store.flush()
        assert await left_after_opening(purge=False) == 1
        assert await left_after_opening(purge=True) == 0

    asyncio.run(main())
