"""A throwaway PostgreSQL cluster for one test session: initdb into a temporary folder, a Unix socket only.

PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user (made by
Debian's `postgresql` package). No TCP port is opened; the port number only names the socket.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

MISSING = ("PostgreSQL is not installed (no initdb and pg_ctl found in /usr/local/bin or /usr/lib/postgresql/*/bin): "
           "install the Debian package `postgresql` (.ci/run does) to run the store tests against PostgreSQL")


def _bin_dir() -> Path | None:
    candidates = [Path("/usr/local/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A running cluster; `database()` makes a fresh database and drops it afterwards."""

    def __init__(self, root: Path, port: int, as_user: list[str]) -> None:
        self.root = root
        self.port = port
        self.as_user = as_user
        self._names = itertools.count()

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@/{dbname}?host={self.root}&port={self.port}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url("postgres"), autocommit=True)

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        name = f"test_{os.getpid()}_{next(self._names)}"
        with self.admin() as admin:
            admin.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        try:
            yield self.url(name)
        finally:
            with self.admin() as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def pg_ctl(self, *args: str, timeout: float = 60) -> None:
        log = self.root / "server.log"
        command = [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-l", str(log), "-w",
                   *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {result.stdout}{result.stderr}\n{tail}")

    def start(self) -> None:
        # Durability is not what the tests are about: no fsync makes CREATE DATABASE and commits fast.
        self.pg_ctl("-o", f"-k {self.root} -p {self.port} -c listen_addresses='' -c fsync=off "
                          "-c full_page_writes=off -c synchronous_commit=off -c max_connections=200", "start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "stop")

    bin: Path


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """Start a cluster; raises RuntimeError with MISSING when PostgreSQL is not installed."""
    folder = _bin_dir()
    if folder is None:
        raise RuntimeError(MISSING)
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="klaswacht-pg-"))
    try:
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("the tests run as root and PostgreSQL refuses to: a `postgres` system user is "
                                   "needed (the Debian package `postgresql` makes it)") from None
            os.chown(root, user.pw_uid, user.pw_gid)
            as_user = ["runuser", "-u", "postgres", "--"]
        server = Cluster(root, _free_port(), as_user)
        server.bin = folder
        result = subprocess.run([*as_user, str(folder / "initdb"), "-D", str(root / "data"), "-U", "postgres",
                                 "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                                capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stdout}{result.stderr}")
        server.start()
        try:
            yield server
        finally:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                server.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)
