"""`klaswacht backup` and `klaswacht restore`: an archive made while the store writes comes back whole."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import argon2
import pytest

from klaswacht import backup as kbackup
from klaswacht.cli import main
from klaswacht.store import Event, Store
from klaswacht.store.schema import LATEST, migrate
from klaswacht.store.sqlite import SqliteDatabase

CA_FILES = {"mitmproxy-ca.pem": b"-----BEGIN PRIVATE KEY-----\nfake key and cert\n",
            "mitmproxy-ca-cert.pem": b"-----BEGIN CERTIFICATE-----\nfake cert\n",
            "mitmproxy-ca-cert.p12": b"\x30\x82binary"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def make_ca(data_dir: Path) -> None:
    (data_dir / "ca").mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, data in CA_FILES.items():
        (data_dir / "ca" / name).write_bytes(data)
    (data_dir / "dashboard.key").write_text("dashboard-session-key\n")


async def count_events(data_dir: Path) -> int:
    async with Store(data_dir) as store:
        return len([e async for e in store.events()])


def test_backup_while_the_store_writes_restores_events_accounts_keys_and_ca(tmp_path: Path) -> None:
    """A backup taken while events stream in holds everything written before it; restored, sign-in works."""
    live, fresh, archive = tmp_path / "live", tmp_path / "fresh", tmp_path / "out" / "backup.tar.gz"
    archive.parent.mkdir()
    make_ca(live)

    async def scenario() -> tuple[int, int, str]:
        store = Store(live, batch_interval=0.01)
        await store.open()
        await store.add_user("test", "juf.anna", "teacher", "geheim wachtwoord", ["groep 7"])
        pupil = store.pseudonyms.pupil("1001")
        writing = True

        async def writer() -> None:
            n = 0
            while writing:
                store.record(Event("block", "search", "coarse", "www.google.com", ("x",), pupil, "groep 7"))
                n += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.3)
        written_before = store.counters["written"]
        assert written_before > 0
        await asyncio.to_thread(kbackup.backup, live, archive)  # while the writer goes on
        await asyncio.sleep(0.2)
        writing = False
        await task
        await store.close()
        return written_before, store.counters["written"], pupil

    written_before, written_total, pupil = asyncio.run(scenario())
    assert mode(archive) == 0o600
    assert main(["restore", str(archive), "--data-dir", str(fresh)]) == 0

    restored = asyncio.run(count_events(fresh))
    assert written_before <= restored <= written_total

    async def check_fresh() -> None:
        async with Store(fresh) as store:
            staff = await store.verify_user("juf.anna", "geheim wachtwoord")
            assert staff is not None and staff.role == "teacher"
            assert await store.verify_user("juf.anna", "fout") is None
            assert store.pseudonyms.pupil("1001") == pupil  # same key: the same ids

    asyncio.run(check_fresh())
    assert (fresh / "secret.key").read_bytes() == (live / "secret.key").read_bytes()
    assert (fresh / "dashboard.key").read_bytes() == (live / "dashboard.key").read_bytes()
    for name, data in CA_FILES.items():
        assert (fresh / "ca" / name).read_bytes() == data
        assert mode(fresh / "ca" / name) == 0o600
    assert mode(fresh) == mode(fresh / "ca") == 0o700
    for name in ("klaswacht.db", "secret.key", "dashboard.key"):
        assert mode(fresh / name) == 0o600
    assert not list(archive.parent.glob(".klaswacht-backup-*"))  # no work files left next to the archive


def test_the_manifest_names_version_schema_and_hashes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = tmp_path / "live"
    asyncio.run(count_events(live))
    make_ca(live)
    (live / "spill").mkdir()
    (live / "spill" / "events-1.jsonl").write_text('{"waiting": 1}\n')
    archive = tmp_path / "b.tar.gz"
    assert main(["backup", str(archive), "--data-dir", str(live)]) == 0
    assert "spill/events-1.jsonl" in capsys.readouterr().out
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest["schema_version"] == LATEST
    assert manifest["klaswacht_version"]
    assert {f["path"] for f in manifest["files"]} == {
        "klaswacht.db", "secret.key", "dashboard.key", "spill/events-1.jsonl", *(f"ca/{n}" for n in CA_FILES)}
    assert all(len(f["sha256"]) == 64 for f in manifest["files"])

    fresh = tmp_path / "fresh"
    assert main(["restore", str(archive), "--data-dir", str(fresh)]) == 0
    assert (fresh / "spill" / "events-1.jsonl").read_text() == '{"waiting": 1}\n'  # events waiting come back


def rewrite(archive: Path, change: dict[str, bytes | None], extra: dict[str, bytes] | None = None) -> Path:
    """A copy of the archive with members replaced (or removed, None) and added, the manifest untouched."""
    out = archive.with_name("tampered.tar.gz")
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name in change:
                replacement = change[member.name]
                if replacement is None:
                    continue
                data = replacement
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    live = tmp_path / "live"
    asyncio.run(count_events(live))
    make_ca(live)
    made = tmp_path / "b.tar.gz"
    kbackup.backup(live, made)
    return made


@pytest.mark.parametrize(("change", "extra", "says"), [
    ({"secret.key": b"another key\n"}, None, "secret.key: sha256 differs from the manifest"),
    ({"ca/mitmproxy-ca.pem": b"evil"}, None, "ca/mitmproxy-ca.pem: sha256 differs"),
    ({"dashboard.key": None}, None, "does not match its manifest"),
    ({}, {"ca/extra.pem": b"x"}, "does not match its manifest"),
    ({}, {"../escape": b"x"}, "unsafe"),
    ({"manifest.json": b"{not json"}, None, "manifest is unreadable"),
])
def test_a_tampered_archive_is_refused(archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       change: dict[str, bytes | None], extra: dict[str, bytes] | None,
                                       says: str) -> None:
    bad = rewrite(archive, change, extra)
    fresh = tmp_path / "fresh"
    assert main(["restore", str(bad), "--data-dir", str(fresh)]) == 1
    err = capsys.readouterr().err
    assert says in err and "restore refused" in err
    assert not fresh.exists()  # nothing written


def test_not_an_archive_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar file")
    assert main(["restore", str(junk), "--data-dir", str(tmp_path / "d")]) == 1
    assert "cannot read the archive" in capsys.readouterr().err


async def make_database(data_dir: Path, upto: int, staff_password: str | None = None) -> None:
    data_dir.mkdir(mode=0o700, parents=True)
    db = SqliteDatabase(data_dir / "klaswacht.db")
    await db.open()
    try:
        await migrate(db, upto=upto)
        if staff_password is not None:
            await db.execute("INSERT INTO staff (name, role, password) VALUES (?, 'admin', ?)",
                             ("beheer", argon2.PasswordHasher().hash(staff_password)))
    finally:
        await db.close()


def test_a_backup_of_an_older_schema_restores_and_migrates_at_start(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    old, fresh, archive = tmp_path / "old", tmp_path / "fresh", tmp_path / "old.tar.gz"
    asyncio.run(make_database(old, 1, staff_password="oud wachtwoord"))
    (old / "secret.key").write_text("0123456789abcdef" * 4 + "\n")
    kbackup.backup(old, archive)
    assert main(["restore", str(archive), "--data-dir", str(fresh)]) == 0
    out = capsys.readouterr().out
    assert "schema version 1; klaswacht" in out and f"migrates it to {LATEST}" in out
    assert kbackup.schema_version(fresh / "klaswacht.db") == 1

    async def start() -> None:
        async with Store(fresh) as store:  # the store migrates on open
            assert await store.verify_user("beheer", "oud wachtwoord") is not None

    asyncio.run(start())
    assert kbackup.schema_version(fresh / "klaswacht.db") == LATEST


def test_a_newer_schema_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new, archive = tmp_path / "new", tmp_path / "new.tar.gz"
    asyncio.run(make_database(new, LATEST))
    with sqlite3.connect(new / "klaswacht.db") as c:
        c.execute("INSERT INTO schema_version VALUES (?, '2030-01-01T00:00:00Z', 'from the future')", (LATEST + 1,))
    c.close()
    kbackup.backup(new, archive)
    fresh = tmp_path / "fresh"
    assert main(["restore", str(archive), "--data-dir", str(fresh)]) == 1
    err = capsys.readouterr().err
    assert f"schema version {LATEST + 1}, newer than this klaswacht knows ({LATEST})" in err
    assert not fresh.exists()


def test_an_existing_database_is_replaced_only_with_force_and_kept(archive: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "target"
    asyncio.run(count_events(target))
    (target / "klaswacht.db-wal").write_bytes(b"stale wal")  # must not meet the restored file
    old_secret = (target / "secret.key").read_bytes()
    assert main(["restore", str(archive), "--data-dir", str(target)]) == 1
    assert "--force" in capsys.readouterr().err
    assert (target / "secret.key").read_bytes() == old_secret

    assert main(["restore", str(archive), "--data-dir", str(target), "--force"]) == 0
    out = capsys.readouterr().out
    assert "kept the old klaswacht.db as klaswacht.db.before-restore" in out
    assert (target / "secret.key.before-restore").read_bytes() == old_secret
    assert (target / "klaswacht.db-wal.before-restore").read_bytes() == b"stale wal"
    assert not (target / "klaswacht.db-wal").exists()
    assert (target / "secret.key").read_bytes() != old_secret
    # A second restore keeps the first one's files too.
    assert main(["restore", str(archive), "--data-dir", str(target), "--force"]) == 0
    assert (target / "secret.key.before-restore").read_bytes() == old_secret
    assert (target / "secret.key.before-restore.2").exists()
    assert asyncio.run(count_events(target)) == 0


HOLD_DATABASE = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA journal_mode = WAL")
c.execute("SELECT 1 FROM sqlite_master").fetchall()
print("ready", flush=True)
time.sleep(60)
"""


def test_restore_refuses_while_another_process_has_the_database_open(archive: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "target"
    asyncio.run(count_events(target))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_DATABASE, str(target / "klaswacht.db")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        assert main(["restore", str(archive), "--data-dir", str(target), "--force"]) == 1
        err = capsys.readouterr().err
        assert f"process {holder.pid} has {target / 'klaswacht.db'} open" in err and "stop it first" in err
    finally:
        holder.kill()
        holder.communicate()
    assert main(["restore", str(archive), "--data-dir", str(target), "--force"]) == 0


def test_restore_refuses_while_klaswacht_runs_on_the_data_dir(archive: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A proxy that has not opened the database (or lost it) is still seen, by its command line."""
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "proxy.worker",
                                "--data-dir", str(target)])
    try:
        assert main(["restore", str(archive), "--data-dir", str(target)]) == 1
        assert f"klaswacht process {sleeper.pid} runs on {target}" in capsys.readouterr().err
    finally:
        sleeper.kill()
        sleeper.wait()
