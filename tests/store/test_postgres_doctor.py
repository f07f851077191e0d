"""`klaswacht doctor` on a PostgreSQL store (issue 7): reachable, schema version, migrations lock; no password shown.

Against the session's throwaway cluster (postgres_server.py); each test has a fresh database.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest
from store_helpers import database_url, make_store

from klaswacht import doctor
from klaswacht.cli import main
from klaswacht.store.postgres import SCHEMA_LOCK
from klaswacht.store.schema import LATEST

pytestmark = pytest.mark.postgresql_only


def migrated(data_dir: Path) -> str:
    """The test's database with klaswacht's schema in it (a store opened and closed once): its URL."""

    async def once() -> None:
        store = make_store(data_dir)
        await store.open(background=False)
        await store.close()

    asyncio.run(once())
    url = database_url(data_dir)
    assert url
    return url


def run_doctor(data_dir: Path, url: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Doctor's lines about the database (the data dir itself is not what these tests are about)."""
    main(["doctor", "--data-dir", str(data_dir), "--database", url, "--proxy-port", "0", "--dashboard-port", "0",
          "--metrics-port", "0"])
    out = capsys.readouterr().out
    return [line for line in out.splitlines() if " database" in line[:12] or "migrations lock" in line]


def with_password(url: str, password: str) -> str:
    """The URL with a password for its user (the test cluster trusts local connections and ignores it)."""
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@")


def test_a_migrated_database_passes_and_the_password_is_never_printed(data_dir: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """✓ database (schema current) and ✓ migrations lock; the URL is shown with *** for its password."""
    url = with_password(migrated(data_dir), "s3cret-Pw")
    lines = run_doctor(data_dir, url, capsys)
    assert len(lines) == 2, lines
    assert lines[0].startswith("✓ database: postgresql://postgres:***@/") and f"schema version {LATEST} (current)" \
        in lines[0], lines
    assert lines[1] == "✓ migrations lock: free"
    assert "s3cret-Pw" not in "\n".join(lines)


def test_an_unreachable_server_fails_without_the_password(data_dir: Path, postgres: object,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A port where no server listens: ✗ with what to check, and still no password."""
    url = with_password(migrated(data_dir), "s3cret-Pw")
    port = url.rsplit("port=", 1)[1]
    lines = run_doctor(data_dir, url.replace(f"port={port}", "port=1"), capsys)
    assert lines[0].startswith("✗ database: cannot connect to postgresql://postgres:***@/"), lines
    assert "pg_isready" in lines[0] and "s3cret-Pw" not in lines[0]


def test_an_empty_database_is_named_as_not_migrated(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = database_url(data_dir)
    assert url
    lines = run_doctor(data_dir, url, capsys)
    assert lines[0].startswith("✗ database: ") and "holds no klaswacht schema" in lines[0], lines
    assert "systemctl restart klaswacht" in lines[0]


def test_an_old_schema_is_named_with_both_versions(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = migrated(data_dir)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DELETE FROM schema_version WHERE version = %s", (LATEST,))
    lines = run_doctor(data_dir, url, capsys)
    assert f"schema version {LATEST - 1}, this klaswacht needs {LATEST}" in lines[0], lines


def test_a_held_migrations_lock_is_a_warning_then_a_failure(data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Another session holds the advisory lock the store migrates under: a warning while it may be a migration
    in progress, a failure with the pid and how to end it once it is older than MIGRATION_GRACE."""
    url = migrated(data_dir)
    with psycopg.connect(url, application_name="stuck-gateway") as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        pid = holder.info.backend_pid
        lines = run_doctor(data_dir, url, capsys)
        assert lines[1].startswith(f"! migrations lock: held by process {pid} (stuck-gateway)"), lines
        monkeypatch.setattr(doctor, "MIGRATION_GRACE", 0.0)
        lines = run_doctor(data_dir, url, capsys)
        assert lines[1].startswith(f"✗ migrations lock: held by process {pid} (stuck-gateway)"), lines
        assert f"pg_terminate_backend({pid})" in lines[1]
    lines = run_doctor(data_dir, url, capsys)
    assert lines[1] == "✓ migrations lock: free"
