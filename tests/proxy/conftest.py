"""Fixtures of the end-to-end tests; the helpers themselves are in proxy_helpers.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from proxy_helpers import Parent, make_parent


@pytest.fixture(scope="module")
def parent() -> Iterator[Parent]:
    p = make_parent()
    yield p
    p.server.shutdown()
    p.server.server_close()
