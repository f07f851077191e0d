"""Fixtures of the store tests: every test runs twice, against a real SQLite file under tmp_path and against a
fresh database on a real PostgreSQL server (one throwaway cluster per test session, see postgres_server.py).

A test of SQLite's own failures (a file locked by another process, deleted, full) is marked `sqlite_only`
and runs with SQLite only; the PostgreSQL counterparts (server stopped, a lock held by another session)
are marked `postgresql_only`. Where PostgreSQL is not installed the PostgreSQL cases fail and name the package.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import Cluster, cluster
from store_helpers import DATABASES

BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        only = [b for b in BACKENDS if metafunc.definition.get_closest_marker(f"{b}_only") is not None]
        metafunc.parametrize("backend", only or list(BACKENDS))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """The session's PostgreSQL cluster, started on first use and stopped at the end of the session."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(cluster())
        except RuntimeError as e:
            problem = str(e)
        else:
            problem = ""
        if problem:  # outside the except: the message alone, not a chain of tracebacks
            pytest.fail(problem, pytrace=False)
        yield server


@pytest.fixture
def data_dir(tmp_path: Path, backend: str, request: pytest.FixtureRequest,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh data dir for one test; with PostgreSQL also a fresh database, dropped after the test.

    Stores made with store_helpers.make_store(data_dir) use that database, and so do `klaswacht`
    commands run by the test (through KLASWACHT_DATABASE).
    """
    path = tmp_path / "data"
    if backend == "sqlite":
        monkeypatch.delenv("KLASWACHT_DATABASE", raising=False)
        yield path
        return
    server: Cluster = request.getfixturevalue("postgres")
    with server.database() as url:
        DATABASES[path] = url
        monkeypatch.setenv("KLASWACHT_DATABASE", url)
        try:
            yield path
        finally:
            del DATABASES[path]
