"""Fixtures of the dashboard tests; the helpers themselves are in dashboard_helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_helpers import open_school


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Accounts and roster made once (argon2 is slow on purpose); each test gets a copy (open_school's template)."""
    data_dir = tmp_path_factory.mktemp("school")
    open_school(data_dir)
    return data_dir
