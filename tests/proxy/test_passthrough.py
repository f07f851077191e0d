"""Selective interception in a real `klaswacht run` with the shipped primary policy (issue 6).

`[filter] passthrough = true`: at the CONNECT request and the TLS ClientHello the addon asks
`filters.interception` whether any rule needs to look inside the host. If not, the connection is passed
through undecrypted (here: to the parent proxy, which sees the pupil's own ClientHello); a closed chat host
is decrypted and gets the block page; an inspected category (filesharing) is decrypted so that a photo
upload is blocked; a refused category (doh, vpn) is refused at the CONNECT (403) or the ClientHello
(closed), and nothing reaches the parent.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from proxy_helpers import KLASWACHT, Parent, Running, connect, decrypting_everything, metric, start, until

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (Debian package curl)")

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200)


def curl(running: Running, url: str, *extra: str) -> tuple[str, str]:
    """(HTTP status or "000" when the connection failed, body) of an HTTPS request through the proxy."""
    result = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10", "--cacert", running.lines["ca"],
         "-x", running.proxy, *extra, url], capture_output=True, text=True, timeout=30, check=False)
    body, _, code = result.stdout.rpartition("\n")
    return code, body


def tunnels(parent: Parent, target: str) -> list[dict[str, str]]:
    """What the parent proxy noted of CONNECT requests to `target` (host:port)."""
    return [headers for method, url, headers in parent.seen if method == "CONNECT" and url == target]


def events(running: Running) -> list[dict[str, object]]:
    """The stored events (the run must have stopped: events are flushed then)."""
    result = subprocess.run([KLASWACHT, "events", "--data-dir", str(running.data_dir)], capture_output=True,
                            text=True, timeout=60, check=True)
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def shipped(tmp_path: Path, parent: Parent) -> Running:
    return start(tmp_path / "data", "--period", "lesson", "--upstream", parent.url)


def test_an_ordinary_host_passes_through_and_chat_is_decrypted(shipped: Running, parent: Parent) -> None:
    """The shipped policy: an ordinary host's TLS goes through untouched; discord.com is decrypted and blocked."""
    try:
        # Not decrypted: curl's own handshake reaches the parent proxy, which is no TLS server: no HTTP answer.
        assert curl(shipped, "https://www.speelgoedwinkel.nl/")[0] == "000"
        assert until(lambda: {"first-byte": "16"} in tunnels(parent, "www.speelgoedwinkel.nl:443"), 5) is not None
        assert metric(shipped, 'klaswacht_tls_connections_total{choice="passthrough"}') >= 1
        code, body = curl(shipped, "https://discord.com/app")
        assert code == "403" and "Chatten doen we niet op school." in body
        assert metric(shipped, 'klaswacht_tls_connections_total{choice="decrypt"}') >= 1
    finally:
        shipped.stop()


def test_a_photo_to_a_filesharing_host_is_blocked_and_elsewhere_not_read(shipped: Running, parent: Parent) -> None:
    """filesharing is inspected: a photo posted to wetransfer.com is decrypted and blocked (it never leaves);
    the same photo to a host passed through is not read (the trade of passthrough, see policies/README.md)."""
    try:
        photo = ("-X", "POST", "-H", "Content-Type: image/jpeg", "--data-binary", "@-")
        result = subprocess.run(
            ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10", "--cacert", shipped.lines["ca"],
             "-x", shipped.proxy, *photo, "https://wetransfer.com/upload"],
            input=JPEG, capture_output=True, timeout=30, check=False)
        body, _, code = result.stdout.decode().rpartition("\n")
        assert code == "403" and "Regel: upload" in body
        assert tunnels(parent, "wetransfer.com:443") == []  # the host was never contacted
        result = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "--max-time", "10", "--cacert", shipped.lines["ca"],
             "-x", shipped.proxy, *photo, "https://www.fotoalbum-thuis.nl/upload"],
            input=JPEG, capture_output=True, timeout=30, check=False)
        assert until(lambda: {"first-byte": "16"} in tunnels(parent, "www.fotoalbum-thuis.nl:443"), 5) is not None
    finally:
        shipped.stop()


def test_doh_is_refused_at_the_connect_and_recorded_like_a_block(shipped: Running, parent: Parent) -> None:
    """CONNECT to a DoH resolver: 403 from the proxy, no tunnel upstream, counted, one block event (no content)."""
    try:
        for _ in range(3):  # a browser retries: every refusal is counted, one is recorded
            sock, status = connect(shipped, "dns.google:443")
            sock.close()
            assert status.startswith(b"HTTP/1.1 403")
        sock, status = connect(shipped, "chrome.cloudflare-dns.com:443")
        sock.close()
        assert status.startswith(b"HTTP/1.1 403")
        assert metric(shipped, 'klaswacht_refused_connections_total{category="doh"}') == 4
        assert metric(shipped, 'klaswacht_verdicts_total{action="block",category="doh",rule="closed-category"}') == 4
        assert metric(shipped, 'klaswacht_tls_connections_total{choice="decrypt"}') == 0
        assert tunnels(parent, "dns.google:443") == [] and tunnels(parent, "chrome.cloudflare-dns.com:443") == []
    finally:
        shipped.stop()
    refused = [(e["action"], e["rule"], e["category"], e["host"], e["terms"]) for e in events(shipped)
               if e["category"] == "doh"]
    assert sorted(refused) == [("block", "closed-category", "doh", "chrome.cloudflare-dns.com", ["cloudflare-dns.com"]),
                               ("block", "closed-category", "doh", "dns.google", ["dns.google"])]


@pytest.mark.parametrize(("server_name", "category"), [
    ("mask.icloud.com", "vpn"),  # Apple's iCloud Private Relay
    ("use-application-dns.net", "doh"),  # the browsers' DoH canary
])
def test_a_refused_server_name_closes_the_connection_at_the_client_hello(
        tmp_path: Path, parent: Parent, server_name: str, category: str) -> None:
    """A tunnel to an address on no list is let through, but its ClientHello names a refused host: the connection
    is closed without decrypting, and nothing is sent upstream (transparent mode decides the same way)."""
    running = start(tmp_path / "data", "--period", "lesson", "--upstream", parent.url)
    try:
        sock, status = connect(running, "192.0.2.44:443")
        assert status.startswith(b"HTTP/1.1 200")
        client = ssl.create_default_context()
        with pytest.raises((ssl.SSLError, OSError)), client.wrap_socket(sock, server_hostname=server_name) as tls:
            tls.recv(1)
        sock.close()
        assert metric(running, f'klaswacht_refused_connections_total{{category="{category}"}}') == 1
        assert tunnels(parent, "192.0.2.44:443") == []
    finally:
        running.stop()


def test_without_passthrough_every_connection_is_decrypted(tmp_path: Path, parent: Parent) -> None:
    """passthrough off: curl's TLS ends at the proxy (with the school's CA), which answers itself when its own
    connection upstream fails; no passthrough choice is made, and a refused category is still refused."""
    running = start(tmp_path / "data", *decrypting_everything(tmp_path), "--upstream", parent.url)
    try:
        assert curl(running, "https://www.speelgoedwinkel.nl/")[0] == "502"
        assert metric(running, 'klaswacht_tls_connections_total{choice="passthrough"}') == 0
        sock, status = connect(running, "dns.quad9.net:443")
        sock.close()
        assert status.startswith(b"HTTP/1.1 403")
    finally:
        running.stop()
