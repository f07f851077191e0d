"""Fixtures of the store tests: every test runs against a real SQLite file under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh data dir for one test."""
    return tmp_path / "data"
