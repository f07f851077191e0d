"""`klaswacht backup FILE` and `klaswacht restore FILE`: one archive of what a school must not lose.

The archive (tar.gz, mode 0600) holds:

- `klaswacht.db`: a consistent copy made with SQLite's online backup API, safe while klaswacht runs
  (the -wal file is never copied by hand: a copy of the main file and the WAL taken at different
  moments is not a database);
- `secret.key` (the pseudonym key: without it every pupil gets new ids), `dashboard.key` (the
  dashboard's session key), `ca/` (mitmproxy's CA files, whatever their names: the certificate that
  pupils' devices trust and its private key);
- `spill/`: events that were waiting for the database (copied *before* the database, so an event
  replayed meanwhile is in the copy of the database or in the copy of its spill file; the ids make
  a replay after a restore harmless);
- `manifest.json`: klaswacht version, schema version, time, and every file with its size and sha256.

With a PostgreSQL store (`--database postgresql://...` or KLASWACHT_DATABASE) the database is
`klaswacht.pgdump` instead: `pg_dump --format=custom` (one consistent snapshot, safe while gateways
write), restored with `pg_restore --single-transaction` into the database `--database` names. The
password goes to pg_dump and pg_restore in their environment (PGPASSWORD), never on their command line,
and is never printed. Restore refuses while a klaswacht session (any gateway) is connected, refuses a
database that holds klaswacht's tables without `--force`, and then first keeps a pg_dump of what it
replaces as `klaswacht.pgdump.before-restore` in the data dir. pg_dump and pg_restore must be installed
(Debian: `postgresql-client`) and not older than the server.

The hashes guard against a damaged or edited archive, not against an attacker (who could rewrite the
manifest too). The archive holds pupils' names and the CA's private key: keep it as safe as the gateway.

Restore refuses while a process has the data dir's database open or runs klaswacht on that data dir
(see `users_of`), refuses to replace existing files without `--force`, keeps replaced files as
`*.before-restore`, and leaves migrations to the next start (the store migrates on open).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from klaswacht.store import DATABASE_ENV, DB_NAME, default_database_url
from klaswacht.store.postgres import is_url, redact
from klaswacht.store.schema import LATEST

MANIFEST = "manifest.json"
FORMAT = "klaswacht-backup"
FORMAT_VERSION = 1
KEYS = ("secret.key", "dashboard.key")
PG_DUMP = "klaswacht.pgdump"  # the database of a PostgreSQL store, as pg_dump --format=custom writes it
PG_TIMEOUT = 3600.0  # seconds pg_dump or pg_restore may take
FOLDERS = ("ca", "spill")  # copied whole, whatever mitmproxy or the intake call their files
BEFORE = ".before-restore"
# The shared-memory file's "dead man switch" byte: every connection to a WAL database holds a read lock
# on it (https://www.sqlite.org/walformat.html, section 2.3.1).
_DMS_OFFSET = 128
_FLOCK = "hhqqi"  # struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid


class BackupError(Exception):
    """A backup or restore that cannot be done, with the reason for people."""


def klaswacht_version() -> str:
    try:
        return metadata.version("klaswacht")
    except metadata.PackageNotFoundError:
        return "unknown"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def schema_version(db: Path) -> int:
    """The schema version of a database file (0 if it has no schema yet), opened read-only."""
    try:
        with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as c:
            names = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "schema_version" not in names:
                return 0
            return int(c.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)
    except sqlite3.Error as e:
        raise BackupError(f"{db.name}: not a klaswacht database ({e})") from e


# --- who is using a data dir


def lock_holder(path: Path, offset: int) -> int | None:
    """The pid of a process holding a POSIX lock on byte `offset` of `path`, None if none (F_GETLK: takes none)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None  # no shared-memory file: no connection in WAL mode
    try:
        request = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, request + bytes(8))
        kind, _, _, _, pid = struct.unpack(_FLOCK, answer[:struct.calcsize(_FLOCK)])
        return None if kind == fcntl.F_UNLCK else pid
    except OSError:
        return None
    finally:
        os.close(fd)


def _klaswacht_processes(data_dir: Path) -> list[int]:
    """Pids of `klaswacht run`, its proxy and its dashboard working on `data_dir` (Linux: /proc)."""
    found = []
    target = data_dir.resolve()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        words = [w.decode("utf-8", "replace") for w in argv]
        if not any("klaswacht" in w or w in ("proxy.worker", "dashboards.serve") for w in words):
            continue
        for i, word in enumerate(words):
            value = words[i + 1] if word == "--data-dir" and i + 1 < len(words) else (
                word.removeprefix("--data-dir=") if word.startswith("--data-dir=") else None)
            if value and (cwd / Path(value).expanduser()).resolve() == target and int(entry.name) != os.getpid():
                found.append(int(entry.name))
                break
    return found


def users_of(data_dir: Path) -> list[str]:
    """What is using `data_dir` now, for people; empty when it is safe to swap its files.

    Two signs, read from outside (klaswacht writes no pid file): a process holding SQLite's lock on the
    database's shared-memory file (any connection, the proxy's, the dashboard's or a command's), and a
    klaswacht process started with this `--data-dir`. Limitation: a klaswacht started with the default
    data dir and no `--data-dir` that has not opened the database yet is not seen; `klaswacht run`
    always passes `--data-dir` to its proxy and dashboard, so those are.
    """
    users = []
    holder = lock_holder(Path(f"{data_dir / DB_NAME}-shm"), _DMS_OFFSET)
    if holder is not None:
        users.append(f"process {holder} has {data_dir / DB_NAME} open")
    for pid in _klaswacht_processes(data_dir):
        if pid != holder:
            users.append(f"klaswacht process {pid} runs on {data_dir}")
    return users


def _check_owner(data_dir: Path) -> None:
    """Files made by another user (root) would lock the service out of its own database: refuse."""
    if not data_dir.exists():
        return
    owner = data_dir.stat().st_uid
    if owner != os.geteuid():
        try:
            import pwd

            name = pwd.getpwuid(owner).pw_name
        except (KeyError, ImportError):
            name = str(owner)
        raise BackupError(f"{data_dir} belongs to {name}: files made by another user would lock klaswacht out; "
                          f"run as its owner: sudo -u {name} klaswacht ...")


# --- PostgreSQL: pg_dump and pg_restore


@dataclass(frozen=True)
class Postgres:
    """How to reach a PostgreSQL database with its client tools: the password only in their environment."""

    url: str
    conninfo: str  # without the password: it may be seen on the command line (ps)
    env: dict[str, str]
    password: str

    @classmethod
    def of(cls, url: str) -> Postgres:
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as e:
            raise BackupError(f"the database URL {redact(url)} is not valid") from e
        password = str(params.pop("password", None) or "")
        env = {**os.environ, "PGCONNECT_TIMEOUT": str(params.pop("connect_timeout", 10))}
        env.pop("PGPASSWORD", None)
        if password:
            env["PGPASSWORD"] = password
        return cls(url, make_conninfo("", **{k: str(v) for k, v in params.items()}), env, password)

    def scrub(self, text: str) -> str:
        return text.replace(self.password, "***") if len(self.password) >= 3 else text

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            return psycopg.connect(self.url, autocommit=True, application_name="klaswacht-backup",
                                   connect_timeout=10)
        except psycopg.Error as e:
            raise BackupError(f"cannot connect to {redact(self.url)}: {self.scrub(str(e).strip())}") from None

    def run(self, tool: str, *args: str) -> None:
        path = shutil.which(tool)
        if path is None:
            raise BackupError(f"{tool} not found: a PostgreSQL store is backed up and restored with pg_dump and "
                              "pg_restore (Debian: apt-get install postgresql-client)")
        try:
            done = subprocess.run([path, "--no-password", *args, f"--dbname={self.conninfo}"], env=self.env,
                                  capture_output=True, text=True, timeout=PG_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as e:
            raise BackupError(f"{tool} took longer than {PG_TIMEOUT:.0f} s; stopped") from e
        if done.returncode != 0:
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()][-3:]
            raise BackupError(f"{tool} failed on {redact(self.url)}: {self.scrub(' / '.join(lines))}")

    def state(self) -> tuple[int, list[str]]:
        """(schema version, 0 without klaswacht's tables; other klaswacht sessions on the database, for people)."""
        with self.connect() as c:
            row = c.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
            version = 0
            if row and row[0]:
                found = c.execute("SELECT MAX(version) FROM schema_version").fetchone()
                version = int(found[0] or 0) if found else 0
            others = c.execute(
                "SELECT pid, application_name, client_addr FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND application_name LIKE 'klaswacht%' "
                "AND application_name <> 'klaswacht-backup'").fetchall()
        return version, [f"session {pid} ({name}) from {addr or 'a local socket'}" for pid, name, addr in others]

    def dump(self, target: Path) -> int:
        """pg_dump the database into `target` (0600); its schema version."""
        before, _ = self.state()
        if before == 0:
            raise BackupError(f"{redact(self.url)} holds no klaswacht database to back up")
        target.touch(mode=0o600)
        self.run("pg_dump", "--format=custom", f"--file={target}")
        after, _ = self.state()
        if after != before:
            raise BackupError("a migration ran while the backup was made: run the backup again")
        self.run("pg_restore", "--list", str(target))  # the dump reads back
        return before


# --- backup


@dataclass(frozen=True)
class Backup:
    path: Path
    manifest: dict[str, Any]


def _copy_database(db: Path, target: Path) -> None:
    """A consistent copy of the live database with the online backup API, as one file (no WAL)."""
    try:
        with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=10)) as src, \
                contextlib.closing(sqlite3.connect(target)) as dst:
            src.backup(dst)  # all pages in one step: one read transaction, one moment of the database
            dst.execute("PRAGMA journal_mode = DELETE")
            problem = dst.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as e:
        raise BackupError(f"{db}: cannot copy the database: {e}") from e
    if problem != "ok":
        raise BackupError(f"{db}: the database is damaged ({problem}); nothing written")


def _gather(data_dir: Path, work: Path, postgres: Postgres | None = None) -> tuple[list[tuple[str, Path]], int]:
    """(name in the archive, file to read) of everything to keep, and the schema version; the database copied
    into `work` (SQLite's online backup, or pg_dump)."""
    files: list[tuple[str, Path]] = []
    # Spill files first: an event replayed into the database after this is in the database's copy.
    for folder in ("spill", "ca"):
        base = data_dir / folder
        if base.is_dir():
            for path in sorted(base.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    copy = work / "files" / path.relative_to(data_dir)
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        shutil.copyfile(path, copy)
                    except FileNotFoundError:
                        continue  # a spill file replayed and removed meanwhile: its events are in the database
                    files.append((path.relative_to(data_dir).as_posix(), copy))
    for name in KEYS:
        if (data_dir / name).is_file():
            files.append((name, data_dir / name))
    if postgres is not None:
        schema = postgres.dump(work / PG_DUMP)
        files.append((PG_DUMP, work / PG_DUMP))
        return files, schema
    _copy_database(data_dir / DB_NAME, work / DB_NAME)
    files.append((DB_NAME, work / DB_NAME))
    return files, schema_version(work / DB_NAME)


def backup(data_dir: Path, target: Path, database_url: str | None = None) -> Backup:
    """Write the archive `target` (0600, replaced atomically) of `data_dir` (and the PostgreSQL database)."""
    if not data_dir.is_dir():
        raise BackupError(f"{data_dir}: no such data dir")
    _check_owner(data_dir)
    target = target.expanduser().absolute()
    postgres = Postgres.of(database_url) if database_url and is_url(database_url) else None
    if postgres is None and not (data_dir / DB_NAME).is_file():
        raise BackupError(f"{data_dir}: no database ({DB_NAME}) to back up")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".klaswacht-backup-") as tmp:
        work = Path(tmp)
        files, schema = _gather(data_dir, work, postgres)
        blobs = {name: path.read_bytes() for name, path in files}
        manifest: dict[str, Any] = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "klaswacht_version": klaswacht_version(),
            "schema_version": schema, "database": "postgresql" if postgres else "sqlite",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "data_dir": str(data_dir.resolve()),
            "files": [{"path": name, "size": len(blob), "sha256": _sha256(blob)} for name, blob in blobs.items()],
        }
        partial = work / "archive.tar.gz"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            _add(tar, MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
            for name, blob in blobs.items():
                _add(tar, name, blob)
            tar.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, target)
    return Backup(target, manifest)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


# --- restore


def read_archive(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and the files of an archive, every hash checked; BackupError on anything amiss."""
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            members: dict[str, bytes] = {}
            for member in tar:
                if not member.isfile():
                    raise BackupError(f"{path}: {member.name!r} is not a plain file: not a klaswacht backup")
                name = member.name
                if name.startswith("/") or ".." in Path(name).parts or name in members:
                    raise BackupError(f"{path}: unsafe or repeated name {name!r} in the archive")
                handle = tar.extractfile(member)
                assert handle is not None
                members[name] = handle.read()
    except (OSError, tarfile.TarError, EOFError) as e:
        raise BackupError(f"{path}: cannot read the archive: {e}") from e
    if MANIFEST not in members:
        raise BackupError(f"{path}: no {MANIFEST}: not a klaswacht backup")
    try:
        manifest = json.loads(members.pop(MANIFEST))
        listed = {f["path"]: f for f in manifest["files"]}
        ok_format = manifest["format"] == FORMAT and int(manifest["format_version"]) <= FORMAT_VERSION
        schema = int(manifest["schema_version"])
    except (ValueError, KeyError, TypeError) as e:
        raise BackupError(f"{path}: the manifest is unreadable ({e!r}): not a klaswacht backup") from e
    if not ok_format:
        raise BackupError(f"{path}: not a klaswacht backup of a format this version reads")
    extra = sorted(set(members) - set(listed))
    missing = sorted(set(listed) - set(members))
    if extra or missing:
        raise BackupError(f"{path}: the archive does not match its manifest (not listed: {extra}, absent: {missing})"
                          ": it is damaged or was changed; nothing restored")
    for name, data in members.items():
        if _sha256(data) != listed[name]["sha256"]:
            raise BackupError(f"{path}: {name}: sha256 differs from the manifest: the archive is damaged or was "
                              "changed; nothing restored")
    if DB_NAME not in members and PG_DUMP not in members:
        raise BackupError(f"{path}: no database in the archive; nothing restored")
    if schema > LATEST:
        raise BackupError(f"{path}: the backup has schema version {schema}, newer than this klaswacht knows "
                          f"({LATEST}): install klaswacht {manifest.get('klaswacht_version', '?')} or newer; "
                          "nothing restored")
    return manifest, members


def _aside(path: Path) -> Path:
    """A free `*.before-restore` name next to `path`."""
    candidate = path.with_name(path.name + BEFORE)
    n = 2
    while candidate.exists() or candidate.is_symlink():
        candidate = path.with_name(f"{path.name}{BEFORE}.{n}")
        n += 1
    return candidate


def _top(name: str) -> str:
    return name.split("/", 1)[0]


def _check_postgres_target(postgres: Postgres, backed_up: int, force: bool) -> int:
    """The schema version in the database restored into, if a restore may go on; BackupError otherwise."""
    version, others = postgres.state()
    if others:
        raise BackupError(f"klaswacht is using {redact(postgres.url)} (" + "; ".join(others) + "): stop klaswacht on "
                          "every gateway that uses it first; nothing restored")
    if version and not force:
        raise BackupError(f"{redact(postgres.url)} already holds a klaswacht database (schema {version}): restore with "
                          f"--force to replace it (a pg_dump of it is kept as {PG_DUMP}{BEFORE} in the data dir); "
                          "nothing restored")
    if version > backed_up:
        raise BackupError(f"{redact(postgres.url)} has schema {version}, newer than the backup's ({backed_up}): "
                          "restore into an empty database (createdb, then --database with its name); nothing restored")
    return version


def restore(archive: Path, data_dir: Path, force: bool = False, database_url: str | None = None) -> list[str]:
    """Restore `archive` into `data_dir` (and its database into PostgreSQL); what was done, one line each."""
    manifest, members = read_archive(archive)
    postgres = Postgres.of(database_url) if database_url and is_url(database_url) else None
    if PG_DUMP in members and postgres is None:
        raise BackupError(f"{archive} holds a PostgreSQL database: name the database to restore it into with "
                          f"--database URL (or ${DATABASE_ENV}); nothing restored")
    if PG_DUMP not in members and postgres is not None:
        raise BackupError(f"{archive} holds a SQLite database: restore it without --database (and without "
                          f"${DATABASE_ENV}); restore does not move a school from SQLite to PostgreSQL; "
                          "nothing restored")
    _check_owner(data_dir)
    if data_dir.exists():
        users = users_of(data_dir)
        if users:
            raise BackupError("klaswacht is using the data dir (" + "; ".join(users) + "): stop it first "
                              "(systemctl stop klaswacht); nothing restored")
    in_database = _check_postgres_target(postgres, int(manifest["schema_version"]), force) if postgres else 0
    tops = sorted({_top(name) for name in members if name != PG_DUMP})
    present = [t for t in tops if (data_dir / t).exists()]
    if present and not force:
        raise BackupError(f"{data_dir} already holds {', '.join(present)}: restore with --force to replace them "
                          f"(they are kept as *{BEFORE}); nothing restored")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    done = []
    staging = Path(tempfile.mkdtemp(dir=data_dir, prefix=".restore-"))
    try:
        for name, data in members.items():
            target = staging / name
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        if postgres is not None:
            if in_database:
                kept = _aside(data_dir / PG_DUMP)
                postgres.dump(kept)
                done.append(f"kept a pg_dump of the database it replaces as {kept.name}")
            postgres.run("pg_restore", "--single-transaction", "--exit-on-error", "--clean", "--if-exists",
                         "--no-owner", "--no-privileges", str(staging / PG_DUMP))
            (staging / PG_DUMP).unlink()
            done.append(f"restored the database into {redact(postgres.url)}")
            restored = int(manifest["schema_version"])
        else:
            restored = schema_version(staging / DB_NAME)
        if restored > LATEST:
            raise BackupError(f"{archive}: its database has schema version {restored}, newer than this klaswacht "
                              f"knows ({LATEST}); nothing restored")
        # The old database's WAL and shared-memory files must go with it: replayed into the restored file
        # they would corrupt it.
        old = [*present, *(f"{DB_NAME}{s}" for s in ("-wal", "-shm")
                           if postgres is None and (data_dir / f"{DB_NAME}{s}").exists())]
        for name in old:
            kept = _aside(data_dir / name)
            os.rename(data_dir / name, kept)
            done.append(f"kept the old {name} as {kept.name}")
        for top in tops:
            os.rename(staging / top, data_dir / top)
            done.append(f"restored {top}" + (f" ({sum(1 for n in members if _top(n) == top)} files)"
                                             if (data_dir / top).is_dir() else ""))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for top in tops:
        if (data_dir / top).is_dir():
            for path in [data_dir / top, *(data_dir / top).rglob("*")]:
                os.chmod(path, 0o700 if path.is_dir() else 0o600)
    if restored < LATEST:
        done.append(f"the database has schema version {restored}; klaswacht {klaswacht_version()} migrates it to "
                    f"{LATEST} when it starts")
    done.append(f"backup of {manifest.get('created', '?')} (klaswacht {manifest.get('klaswacht_version', '?')}, "
                f"schema {manifest['schema_version']}) restored into {data_dir}; start klaswacht again")
    return done


# --- command line


def cmd_backup(args: argparse.Namespace) -> int:
    try:
        made = backup(Path(args.data_dir).expanduser(), Path(args.file), args.database)
    except (BackupError, OSError) as e:
        print(f"klaswacht: backup failed: {e}", file=sys.stderr)
        return 1
    files = made.manifest["files"]
    print(f"backup: {made.path} ({len(files)} files, schema {made.manifest['schema_version']}, "
          f"{made.path.stat().st_size} bytes, mode 0600)")
    for f in files:
        print(f"  {f['path']}  {f['size']} bytes  sha256 {f['sha256'][:16]}…")
    print("it holds pupils' names and the CA's private key: keep it as safe as the gateway")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    try:
        done = restore(Path(args.file), Path(args.data_dir).expanduser(), force=args.force, database_url=args.database)
    except (BackupError, OSError) as e:
        print(f"klaswacht: restore refused: {e}", file=sys.stderr)
        return 1
    for line in done:
        print(line)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], default_data_dir: Path) -> None:
    """Register `backup` and `restore` on the `klaswacht` parser."""
    p = sub.add_parser("backup", help="write one archive (tar.gz, 0600) of the database, keys, CA and spill files; "
                                      "safe while klaswacht runs")
    p.add_argument("file", metavar="FILE", help="the archive to write (replaced if it exists)")
    p.add_argument("--data-dir", default=str(default_data_dir), metavar="DIR", help="(default: %(default)s)")
    _database_option(p, "back up that database with pg_dump")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="put a backup back into a data dir while klaswacht is stopped")
    p.add_argument("file", metavar="FILE", help="an archive written by `klaswacht backup`")
    p.add_argument("--data-dir", default=str(default_data_dir), metavar="DIR", help="(default: %(default)s)")
    p.add_argument("--force", action="store_true",
                   help=f"replace an existing database, keys or CA (the old files are kept as *{BEFORE})")
    _database_option(p, "restore a pg_dump backup into that database with pg_restore")
    p.set_defaults(func=cmd_restore)


def _database_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--database", default=default_database_url(), metavar="URL",
                   help=f"a postgresql:// URL: {what} (default: ${DATABASE_ENV}, else the SQLite file in the data dir)")

