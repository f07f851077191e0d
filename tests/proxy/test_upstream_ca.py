"""KLASWACHT_UPSTREAM_CA: the proxy trusts servers whose certificate a private CA signed (proxy/worker.py).

A school's own servers, and the proxy benchmark's local origin (bench/proxies.py), have certificates that
no public CA signed; without the variable the proxy refuses them, as it should.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_helpers import OWN, QuietHandler, Running, decrypting_everything, serving, start, stopped_after

UPSTREAM_CA_ENV = "KLASWACHT_UPSTREAM_CA"  # the name documented in proxy/worker.py and bench/README.md

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (Debian package curl)")


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An HTTPS server on loopback for 'localhost', its certificate signed by a private CA: (port, CA file)."""
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.answer(b"from the school's own server")

    with serving(Handler, tmp_path) as served:
        yield served


def _curl(running: Running, url: str) -> tuple[str, str]:
    result = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10", "--cacert",
                             running.lines["ca"], "-x", running.proxy, url],
                            capture_output=True, text=True, timeout=30, check=False)
    body, _, code = result.stdout.rpartition("\n")
    return code, body


def test_a_server_signed_by_the_named_ca_is_reached(tmp_path: Path, origin: tuple[int, Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With KLASWACHT_UPSTREAM_CA naming the private CA, the proxy decrypts and reaches the server."""
    port, ca = origin
    monkeypatch.setenv(UPSTREAM_CA_ENV, str(ca))
    for running in stopped_after(start(tmp_path / "data", *decrypting_everything(tmp_path), *OWN)):
        assert _curl(running, f"https://localhost:{port}/") == ("200", "from the school's own server")


def test_without_it_the_private_ca_is_refused(tmp_path: Path, origin: tuple[int, Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the variable the proxy verifies against the public CAs and refuses the server (502)."""
    port, _ = origin
    monkeypatch.delenv(UPSTREAM_CA_ENV, raising=False)
    for running in stopped_after(start(tmp_path / "data", *decrypting_everything(tmp_path), *OWN)):
        code, body = _curl(running, f"https://localhost:{port}/")
        assert code == "502"
        assert "from the school's own server" not in body
