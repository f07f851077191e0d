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
from proxy_helpers import OWN, QuietHandler, Running, serving, start, stopped_after

ROOT = Path(__file__).resolve().parents[2]
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


def _decrypting(tmp_path: Path) -> list[str]:
    """Arguments of `start` for the shipped primary policy with passthrough off, so that the proxy itself makes
    the TLS connection to the server (a host passed through is the device's own TLS: no CA of the proxy's)."""
    policy = tmp_path / "policy.toml"
    text = (ROOT / "policies" / "primary.toml").read_text(encoding="utf-8")
    assert "passthrough = true" in text
    policy.write_text(text.replace("passthrough = true", "passthrough = false"), encoding="utf-8")
    return ["--policy", str(policy), "--period", "lesson"]


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
    for running in stopped_after(start(tmp_path / "data", *_decrypting(tmp_path), *OWN)):
        assert _curl(running, f"https://localhost:{port}/") == ("200", "from the school's own server")


def test_without_it_the_private_ca_is_refused(tmp_path: Path, origin: tuple[int, Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the variable the proxy verifies against the public CAs and refuses the server (502)."""
    port, _ = origin
    monkeypatch.delenv(UPSTREAM_CA_ENV, raising=False)
    for running in stopped_after(start(tmp_path / "data", *_decrypting(tmp_path), *OWN)):
        code, body = _curl(running, f"https://localhost:{port}/")
        assert code == "502"
        assert "from the school's own server" not in body
