"""Lean per-flow work (issue 6): response bodies are streamed, not held, and the proxy's options bound what it keeps.

The parent proxy sends the first part of a page and waits until the client has read it before it sends the
rest: a proxy that held the body would never hand the first part on, and the client's read would time out.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from proxy_helpers import start

FIRST = b"<html><body>" + b"a" * 4000
REST = b"b" * 200_000 + b"</body></html>"


@dataclass
class SlowParent:
    server: ThreadingHTTPServer
    first_read: threading.Event
    rest_sent: threading.Event

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def slow_parent() -> Iterator[SlowParent]:
    first_read, rest_sent = threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(FIRST) + len(REST)))
            self.end_headers()
            self.wfile.write(FIRST)
            self.wfile.flush()
            if first_read.wait(15):  # the rest only once the client has the first part
                self.wfile.write(REST)
                rest_sent.set()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield SlowParent(server, first_read, rest_sent)
    first_read.set()
    server.shutdown()
    server.server_close()


def test_a_response_body_reaches_the_pupil_before_it_is_complete(tmp_path: Path, slow_parent: SlowParent) -> None:
    """The first part of a page is handed on while the rest is still to come: response bodies are streamed."""
    running = start(tmp_path, "--period", "lesson", "--upstream", slow_parent.url)
    try:
        host, port = running.proxy.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"GET http://www.speelgoedwinkel.nl/groot HTTP/1.1\r\nHost: www.speelgoedwinkel.nl\r\n\r\n")
            received = b""
            while b"a" * 4000 not in received:
                chunk = sock.recv(65536)  # times out (fails) if the proxy holds the body until it is complete
                assert chunk, "the proxy closed the connection"
                received += chunk
            assert not slow_parent.rest_sent.is_set()
            slow_parent.first_read.set()
            head, _, body = received.partition(b"\r\n\r\n")
            while len(body) < len(FIRST) + len(REST):
                chunk = sock.recv(65536)
                assert chunk
                body += chunk
            assert head.split(b" ")[1] == b"200" and body == FIRST + REST
    finally:
        running.stop()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyasn1 (tagMap, typeMap), under mitmproxy.tools
def test_the_proxy_options_bound_what_it_keeps() -> None:
    """Lazy server connections, request bodies held up to 1 MB, and no HTTP/2 keep-alive that would keep idle
    decrypted connections open past tcp_timeout."""
    from proxy.worker import build_parser, proxy_options

    options = proxy_options(build_parser().parse_args(["--data-dir", "/tmp/x"]))
    assert options["connection_strategy"] == "lazy"
    assert options["stream_large_bodies"] == "1m"
    assert options["http2_ping_keepalive"] == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyasn1 (tagMap, typeMap), under mitmproxy.tools
def test_only_the_first_worker_runs_the_hourly_purge() -> None:
    """N workers share one database: one purge an hour, not N (the store's side in tests/store)."""
    from proxy.worker import build_parser, proxy_options

    def purges(worker: str) -> object:
        return proxy_options(build_parser().parse_args(["--data-dir", "/tmp/x", "--worker", worker]))["klaswacht_purge"]

    assert (purges("0"), purges("1"), purges("3")) == (True, False, False)
