"""A loopback web server with ETags, as a board's or UT1's static server answers: for `lists update` and `sync`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class EtagServer:
    """`routes`: path under `prefix` -> (status, body, etag); a 200 whose ETag the request names in If-None-Match
    is answered 304. `seen`: (path, lower-cased headers) of every request."""

    server: ThreadingHTTPServer
    prefix: str = ""
    routes: dict[str, tuple[int, bytes, str]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"


@contextmanager
def etag_server[S: EtagServer](kind: type[S], prefix: str = "") -> Iterator[S]:
    """A running server of `kind` (EtagServer or a test's subclass of it), stopped when the block ends."""
    state = kind(ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler), prefix)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            status, body, etag = state.routes.get(self.path.removeprefix(prefix), (404, b"not found", ""))
            if status == 200 and etag and self.headers.get("If-None-Match") == etag:
                status, body = 304, b""
            self.send_response(status)
            if etag:
                self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    state.server.RequestHandlerClass = Handler
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.server.shutdown()
        state.server.server_close()
        thread.join(timeout=10)
