"""proxy/altsvc.py: intercepted responses lose the Alt-Svc entries that advertise QUIC, in a real `klaswacht run`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from proxy_helpers import fetch_headers, start

from proxy.altsvc import without_quic


@pytest.mark.parametrize(("value", "kept"), [
    ('h3=":443"; ma=86400', ""),
    ('h3=":443"; ma=86400, h3-29=":443"; ma=86400, quic=":443"; ma=2592000; v="46,43"', ""),
    ('quic=":443"; v="46,43", h2=":443"', 'h2=":443"'),
    ('H3-Q050=":443", h2="alt.example:443"; ma=60', 'h2="alt.example:443"; ma=60'),
    ('h2=":8443", h3=":443"', 'h2=":8443"'),
    ("clear", "clear"),
    ('h3x=":443"', 'h3x=":443"'),  # not a QUIC id: kept as it is
    ("", ""),
])
def test_without_quic(value: str, kept: str) -> None:
    """h3, its drafts and quic are dropped; other alternatives and "clear" stay."""
    assert without_quic(value) == kept


class _AltSvcParent(BaseHTTPRequestHandler):
    """A parent proxy whose answers advertise HTTP/3 and an HTTP/2 alternative, in two Alt-Svc headers."""

    def do_GET(self) -> None:
        body = b"<html><body>upstream page</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Alt-Svc", 'h3=":443"; ma=86400, h3-29=":443"; ma=86400')
        self.send_header("Alt-Svc", 'h2="alt.speelgoedwinkel.nl:443"; ma=60')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def altsvc_parent() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AltSvcParent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_proxy_strips_http3_hints(tmp_path: Path, altsvc_parent: str) -> None:
    """A response through the proxy keeps its h2 alternative and loses every h3 one."""
    running = start(tmp_path, "--period", "lesson", "--upstream", altsvc_parent)
    try:
        status, headers = fetch_headers(running.proxy, "http://www.speelgoedwinkel.nl/")
        assert status == 200
        assert headers == ['h2="alt.speelgoedwinkel.nl:443"; ma=60']
    finally:
        running.stop()
