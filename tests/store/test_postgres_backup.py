"""`klaswacht backup` / `restore` of a PostgreSQL store (issue 7): pg_dump and pg_restore in the same archive format.

Against the session's throwaway cluster: the backup is restored into a second, empty database, and the
refusals (a gateway still connected, a database in use without --force, the wrong kind of backup, no
pg_dump) leave everything as it was.
"""

from __future__ import annotations

import asyncio
import json
import stat
import tarfile
from pathlib import Path

import psycopg
import pytest
from postgres_server import Cluster
from store_helpers import database_url

from klaswacht import backup as kbackup
from klaswacht.cli import main
from klaswacht.store import Event, Store
from klaswacht.store.schema import LATEST

pytestmark = pytest.mark.postgresql_only
PASSWORD = "s3cret-Pw"


def with_password(url: str) -> str:
    """The URL with a password for its user (the test cluster trusts local connections and ignores it)."""
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")


def fill(data_dir: Path, url: str, events: int) -> str:
    """A store on `url` with a teacher and `events` more events; the pupil's pseudonymous id."""

    async def scenario() -> str:
        store = Store(data_dir, database_url=url, batch_interval=0.01)
        await store.open()
        if await store.verify_user("juf.anna", "geheim wachtwoord") is None:
            await store.add_user("test", "juf.anna", "teacher", "geheim wachtwoord", ["groep 7"])
        pupil = store.pseudonyms.pupil("1001")
        for n in range(events):
            store.record(Event("block", "search", "coarse", "www.google.com", (f"t{n}",), pupil, "groep 7"))
        assert await store.flush()
        await store.close()
        return pupil

    return asyncio.run(scenario())


def count(url: str, table: str = "events") -> int:
    with psycopg.connect(url) as c:
        row = c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0


def test_a_backup_restores_into_an_empty_database_with_keys_and_ca(data_dir: Path, postgres: Cluster,
                                                                   tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The archive (0600) holds a pg_dump, the keys and a manifest; restored elsewhere, sign-in and ids work."""
    url = database_url(data_dir)
    assert url
    pupil = fill(data_dir, url, 25)
    (data_dir / "ca").mkdir(mode=0o700)
    (data_dir / "ca" / "mitmproxy-ca.pem").write_bytes(b"fake key\n")
    archive = tmp_path / "backup.tar.gz"
    assert main(["backup", str(archive), "--data-dir", str(data_dir), "--database", with_password(url)]) == 0
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert {"manifest.json", "klaswacht.pgdump", "secret.key", "ca/mitmproxy-ca.pem"} <= names
    assert "klaswacht.db" not in names
    assert manifest["database"] == "postgresql" and manifest["schema_version"] == LATEST

    fresh = tmp_path / "fresh"
    with postgres.database() as other:
        assert main(["restore", str(archive), "--data-dir", str(fresh), "--database", with_password(other)]) == 0
        out = capsys.readouterr()
        assert "restored the database into postgresql://postgres:***@/" in out.out and PASSWORD not in out.out
        assert count(other) == 25

        async def check() -> None:
            async with Store(fresh, database_url=other) as store:
                staff = await store.verify_user("juf.anna", "geheim wachtwoord")
                assert staff is not None and staff.role == "teacher"
                assert store.pseudonyms.pupil("1001") == pupil

        asyncio.run(check())
    assert (fresh / "ca" / "mitmproxy-ca.pem").read_bytes() == b"fake key\n"
    assert not (fresh / "klaswacht.pgdump").exists() and not (fresh / "klaswacht.db").exists()


def test_a_database_in_use_is_replaced_only_with_force_and_kept_as_a_dump(data_dir: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Without --force nothing changes; with it, the database is the backup's again and the old one a pg_dump."""
    url = database_url(data_dir)
    assert url
    fill(data_dir, url, 10)
    archive = tmp_path / "backup.tar.gz"
    assert kbackup.backup(data_dir, archive, url).manifest["schema_version"] == LATEST
    fill(data_dir, url, 5)  # after the backup
    assert count(url) == 15
    assert main(["restore", str(archive), "--data-dir", str(data_dir), "--database", url]) == 1
    assert "already holds a klaswacht database" in capsys.readouterr().err
    assert count(url) == 15
    assert main(["restore", str(archive), "--data-dir", str(data_dir), "--database", url, "--force"]) == 0
    assert "kept a pg_dump of the database it replaces as klaswacht.pgdump.before-restore" in capsys.readouterr().out
    assert count(url) == 10
    kept = data_dir / "klaswacht.pgdump.before-restore"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and kept.stat().st_size > 0


def test_restore_refuses_while_a_gateway_is_connected(data_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    url = database_url(data_dir)
    assert url
    fill(data_dir, url, 3)
    archive = tmp_path / "backup.tar.gz"
    kbackup.backup(data_dir, archive, url)
    with psycopg.connect(url, application_name="klaswacht"):
        assert main(["restore", str(archive), "--data-dir", str(tmp_path / "d"), "--database", url, "--force"]) == 1
    err = capsys.readouterr().err
    assert "klaswacht is using" in err and "(klaswacht)" in err and "nothing restored" in err
    assert count(url) == 3


def test_the_wrong_kind_of_backup_is_refused_by_name(data_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A pg_dump backup needs --database; a SQLite backup is not poured into PostgreSQL."""
    url = database_url(data_dir)
    assert url
    fill(data_dir, url, 1)
    archive = tmp_path / "pg.tar.gz"
    kbackup.backup(data_dir, archive, url)
    monkeypatch.delenv("KLASWACHT_DATABASE")
    assert main(["restore", str(archive), "--data-dir", str(tmp_path / "d")]) == 1
    assert "holds a PostgreSQL database: name the database" in capsys.readouterr().err

    lite = tmp_path / "lite"
    asyncio.run(_sqlite_store(lite))
    assert main(["backup", str(tmp_path / "lite.tar.gz"), "--data-dir", str(lite)]) == 0
    assert main(["restore", str(tmp_path / "lite.tar.gz"), "--data-dir", str(tmp_path / "e"), "--database",
                 url]) == 1
    assert "holds a SQLite database: restore it without --database" in capsys.readouterr().err
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()


async def _sqlite_store(folder: Path) -> None:
    async with Store(folder):
        pass


def test_without_pg_dump_the_backup_is_refused_naming_it(data_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    url = database_url(data_dir)
    assert url
    fill(data_dir, url, 1)
    monkeypatch.setattr(kbackup.shutil, "which", lambda name: None)
    archive = tmp_path / "backup.tar.gz"
    assert main(["backup", str(archive), "--data-dir", str(data_dir), "--database", url]) == 1
    err = capsys.readouterr().err
    assert "pg_dump not found" in err and "postgresql-client" in err
    assert not archive.exists() and not list(tmp_path.glob(".klaswacht-backup-*"))


def test_an_unreachable_server_is_named_without_the_password(data_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    url = database_url(data_dir)
    assert url
    data_dir.mkdir(mode=0o700, parents=True)
    port = url.rsplit("port=", 1)[1]
    broken = with_password(url).replace(f"port={port}", "port=1")
    assert main(["backup", str(tmp_path / "b.tar.gz"), "--data-dir", str(data_dir), "--database", broken]) == 1
    err = capsys.readouterr().err
    assert "cannot connect to postgresql://postgres:***@/" in err and PASSWORD not in err
