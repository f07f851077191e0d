"""The front door in a real `klaswacht run` (proxy/frontdoor.py, issue 6): a tunnel to a host no rule looks
inside is relayed without mitmproxy, with the same choice the hooks make for that pupil.

The origin is an HTTPS server for `localhost` with a private CA: curl trusts only that CA, so a 200 proves
the proxy did not decrypt (it would present its own certificate). The same host from a banned device is
decrypted (the ban's block page needs it), so the choice is the pupil's, not the host's alone.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_helpers import OWN, QuietHandler, Running, metric, serving, start, start_with_a_banned_pupil, stopped_after

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (Debian package curl)")

PAGE = bytes(range(256)) * 12_000  # 3 MB: many reads and writes each way through the relay


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """An HTTPS server on loopback for 'localhost', its certificate signed by a private CA: (port, CA file)."""
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.answer(PAGE)

        def do_POST(self) -> None:
            self.answer(hashlib.sha256(self.rfile.read(int(self.headers["Content-Length"]))).hexdigest().encode())

    with serving(Handler, tmp_path_factory.mktemp("origin")) as served:
        yield served


def curl(running: Running, url: str, ca: Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
    command = ["curl", "-s", "--max-time", "20", "--cacert", str(ca), "-x", running.proxy, "-o", "-",
               "-w", "\n%{http_code}", *extra, url]
    return subprocess.run(command, capture_output=True, timeout=60, check=False)


def split(result: subprocess.CompletedProcess[bytes]) -> tuple[str, bytes]:
    body, _, code = result.stdout.rpartition(b"\n")
    return code.decode(), body


@pytest.fixture
def shipped(tmp_path: Path) -> Iterator[Running]:
    yield from stopped_after(start(tmp_path / "data", "--period", "lesson", *OWN))


def test_a_tunnel_no_rule_looks_inside_is_relayed_undecrypted(shipped: Running, origin: tuple[int, Path],
                                                               tmp_path: Path) -> None:
    port, ca = origin
    code, body = split(curl(shipped, f"https://localhost:{port}/page", ca))
    assert code == "200" and body == PAGE  # curl trusted the origin's own certificate: not decrypted
    upload = tmp_path / "upload.bin"
    upload.write_bytes(PAGE[::-1])
    code, body = split(curl(shipped, f"https://localhost:{port}/post", ca, "--data-binary", f"@{upload}"))
    assert code == "200" and body == hashlib.sha256(PAGE[::-1]).hexdigest().encode()
    assert metric(shipped, 'klaswacht_tls_connections_total{choice="passthrough"}') == 2
    assert metric(shipped, 'klaswacht_tls_connections_total{choice="decrypt"}') == 0
    assert metric(shipped, 'klaswacht_worker_connections_total{worker="0"}') == 2
    assert metric(shipped, "klaswacht_relayed_connections_total") == 2  # by the front door, not mitmproxy
    # The rest still reaches mitmproxy: a chat host is decrypted and gets the block page.
    code, body = split(curl(shipped, "https://discord.com/app", Path(shipped.lines["ca"])))
    assert code == "403" and b"Chatten doen we niet op school." in body
    assert metric(shipped, 'klaswacht_tls_connections_total{choice="decrypt"}') == 1
    assert metric(shipped, 'klaswacht_worker_connections_total{worker="0"}') == 3
    assert metric(shipped, "klaswacht_relayed_connections_total") == 2


def test_the_choice_is_the_pupils_a_banned_device_gets_the_block_page(tmp_path: Path,
                                                                       origin: tuple[int, Path]) -> None:
    port, ca = origin
    running = start_with_a_banned_pupil(tmp_path, "3001", "Sam de Vries", "127.0.0.2",
                                        "--period", "lesson", *OWN)
    try:
        # Another device: relayed as before.
        assert split(curl(running, f"https://localhost:{port}/page", ca))[0] == "200"
        # The banned device: decrypted by mitmproxy (its CA, not the origin's) for the ban's block page.
        code, body = split(curl(running, f"https://localhost:{port}/page", Path(running.lines["ca"]),
                                "--interface", "127.0.0.2"))
        assert code == "403" and PAGE not in body
        assert metric(running, 'klaswacht_tls_connections_total{choice="passthrough"}') == 1
        assert metric(running, 'klaswacht_tls_connections_total{choice="decrypt"}') == 1
        assert metric(running, "klaswacht_relayed_connections_total") == 1
    finally:
        running.stop()


def test_a_stopping_proxy_closes_its_relayed_tunnels(tmp_path: Path, origin: tuple[int, Path]) -> None:
    port, ca = origin
    running = start(tmp_path / "data", "--period", "lesson", *OWN)
    host, proxy_port = running.proxy.removeprefix("http://").split(":")
    raw = socket.create_connection((host, int(proxy_port)), timeout=10)
    raw.sendall(f"CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    with ssl.create_default_context(cafile=str(ca)).wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.getpeercert() is not None  # the origin's own certificate: relayed, not decrypted
        assert metric(running, "klaswacht_relayed_connections_total") == 1
        assert running.stop() == 0
        try:
            closed = tls.recv(1) == b""
        except (ssl.SSLError, OSError):
            closed = True
        assert closed  # not left open until the pupil's device gives up
    assert "Traceback" not in running.stderr and "unclosed" not in running.stderr, running.stderr


def test_plain_http_in_a_passed_through_tunnel_is_judged_by_mitmproxy(shipped: Running,
                                                                      origin: tuple[int, Path]) -> None:
    """A CONNECT to a passed-through host with plain HTTP for a closed host inside: the block page, as mitmproxy
    gives it, not the request relayed to the passed-through host's server."""
    port, _ = origin
    host, proxy_port = shipped.proxy.removeprefix("http://").split(":")
    with socket.create_connection((host, int(proxy_port)), timeout=10) as raw:
        raw.sendall(f"CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
        assert raw.recv(4096) == b"HTTP/1.1 200 Connection established\r\n\r\n"
        raw.sendall(b"GET /app HTTP/1.1\r\nHost: discord.com\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 403") and b"Chatten doen we niet op school." in answer, answer[:200]
    assert metric(shipped, "klaswacht_relayed_connections_total") == 0


@pytest.mark.parametrize("target", ["134744072:443", "0x8.0x8.0x8.0x8:443", "8.8.8.8.:443"])
def test_a_refused_address_in_another_form_is_refused(shipped: Running, target: str) -> None:
    """8.8.8.8 is on the shipped DoH list: a CONNECT to it written as a number, in hex or with a trailing dot
    (the resolver reads them all as 8.8.8.8) is refused as 8.8.8.8 is, not relayed."""
    host, proxy_port = shipped.proxy.removeprefix("http://").split(":")
    with socket.create_connection((host, int(proxy_port)), timeout=10) as raw:
        raw.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        assert raw.recv(4096).startswith(b"HTTP/1.1 403")
    assert metric(shipped, 'klaswacht_refused_connections_total{category="doh"}') == 1
