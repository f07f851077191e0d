"""Selective interception in a real `klaswacht run` (issue 4, point 12): `[filter] passthrough = true`.

At the TLS ClientHello the addon asks `filters.interception` whether any rule needs to look inside
the host: if not, the connection is passed through undecrypted (here: to the parent proxy, which sees
the pupil's own ClientHello); a closed chat host is still decrypted and gets the block page.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from proxy_helpers import ROOT, Parent, Running, metric, start, until

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (Debian package curl)")


def curl(running: Running, url: str) -> tuple[str, str]:
    """(HTTP status or "000" when the connection failed, body) of an HTTPS request through the proxy."""
    result = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10", "--cacert", running.lines["ca"],
         "-x", running.proxy, url], capture_output=True, text=True, timeout=30, check=False)
    body, _, code = result.stdout.rpartition("\n")
    return code, body


def _start(tmp_path: Path, parent: Parent, passthrough: bool) -> Running:
    policy = tmp_path / "policy.toml"
    text = (ROOT / "policies" / "primary.toml").read_text(encoding="utf-8")
    policy.write_text(text.replace("safesearch = true", f"safesearch = true\npassthrough = {str(passthrough).lower()}"),
                      encoding="utf-8")
    return start(tmp_path / "data", "--policy", str(policy), "--period", "lesson", "--upstream", parent.url)


def test_passthrough_leaves_an_ordinary_host_undecrypted_and_blocks_chat(tmp_path: Path, parent: Parent) -> None:
    """passthrough on: an ordinary host's TLS goes through untouched; discord.com is decrypted and blocked."""
    running = _start(tmp_path, parent, passthrough=True)
    try:
        # Not decrypted: curl's own handshake reaches the parent proxy, which is no TLS server: no HTTP answer.
        assert curl(running, "https://www.speelgoedwinkel.nl/")[0] == "000"
        tunnel = ("CONNECT", "www.speelgoedwinkel.nl:443", {"first-byte": "16"})
        assert until(lambda: tunnel in parent.seen, 5) is not None
        assert metric(running, 'klaswacht_tls_connections_total{choice="passthrough"}') >= 1
        code, body = curl(running, "https://discord.com/app")
        assert code == "403" and "Chatten doen we niet op school." in body
        assert metric(running, 'klaswacht_tls_connections_total{choice="decrypt"}') >= 1
    finally:
        running.stop()


def test_without_passthrough_every_connection_is_decrypted(tmp_path: Path, parent: Parent) -> None:
    """passthrough off (the default): curl's TLS ends at the proxy (with the school's CA), which answers
    itself when its own connection upstream fails; the addon makes no choice."""
    running = _start(tmp_path, parent, passthrough=False)
    try:
        assert curl(running, "https://www.speelgoedwinkel.nl/")[0] == "502"
        assert metric(running, 'klaswacht_tls_connections_total{choice="passthrough"}') == 0
    finally:
        running.stop()
