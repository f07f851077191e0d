"""Helpers of the end-to-end tests: a real `klaswacht run`, a loopback parent proxy that records, and a fetch.

`klaswacht run --upstream` sends what the filter lets through to the parent proxy, so a test sees what
left the gateway (and that a blocked request never did).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.services import make_certificates

KLASWACHT = str(Path(sys.executable).parent / "klaswacht")
# For a test whose servers are on loopback: the proxy refuses the machine's own addresses unless told (proxy/direct.py).
OWN = ("--allow-gateway-addresses",)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Parent:
    """A loopback parent proxy that answers 200 and remembers what it was sent."""

    server: ThreadingHTTPServer
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # (method, url, headers)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def urls(self) -> list[str]:
        return [url for _, url, _ in self.seen]


def make_parent() -> Parent:
    seen: list[tuple[str, str, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()  # the empty line after the last chunk
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _answer(self) -> None:
            if self.headers.get("Upgrade", "").lower() == "websocket":
                self._websocket()
                return
            body = self._read_body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            headers["x-seen-body-bytes"] = str(len(body))
            headers["x-seen-jpeg"] = str(b"\xff\xd8\xff" in body)  # did a photo arrive?
            seen.append((self.command, self.path, headers))
            body = b"<html><body>upstream page</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _answer

        def _websocket(self) -> None:
            """Accept the upgrade and echo one text frame back (unmasked, as a server sends it)."""
            seen.append(("WEBSOCKET", self.path, {k.lower(): v for k, v in self.headers.items()}))
            accept = base64.b64encode(hashlib.sha1(
                self.headers["Sec-WebSocket-Key"].encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            self.send_response(101, "Switching Protocols")
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept.decode())
            self.end_headers()
            self.wfile.flush()
            self.wfile.write(websocket_frame(read_websocket_frame(self.rfile), mask=False))
            self.wfile.flush()
            self.close_connection = True

        def do_CONNECT(self) -> None:
            """A tunnel: accepted, and the first bytes noted (0x16: a TLS ClientHello that was not decrypted)."""
            self.send_response(200, "Connection established")
            self.end_headers()
            self.wfile.flush()
            first = self.connection.recv(1)
            seen.append(("CONNECT", self.path, {"first-byte": first.hex()}))
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Parent(server, seen)


@dataclass
class Running:
    process: subprocess.Popen[str]
    lines: dict[str, str]
    data_dir: Path
    stderr: str = ""

    @property
    def proxy(self) -> str:
        return self.lines["proxy"]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        _, self.stderr = self.process.communicate(timeout=30)  # also closes the pipes
        return self.process.returncode


def start(tmp: Path, *extra: str, workers: int | None = 1) -> Running:
    """`klaswacht run` on free ports; returns once it printed its four address lines.

    One proxy worker unless `workers` says otherwise (None: klaswacht's default, one per core): a test of a
    feature then sees each change (a reload, a grant's snapshot) in force for every request at once, not
    worker by worker within a second or two. tests/proxy/test_workers.py tests N workers."""
    given = () if workers is None else ("--workers", str(workers))
    process = subprocess.Popen(
        [KLASWACHT, "run", "--data-dir", str(tmp), "--proxy-port", "0", "--dashboard-port", "0",
         "--metrics-port", "0", *given, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: dict[str, str] = {}
    assert process.stdout is not None
    for _ in range(4):
        line = process.stdout.readline()
        if not line:
            break
        name, _, value = line.strip().partition(": ")
        lines[name] = value
    if len(lines) < 4:
        process.kill()
        pytest.fail(f"klaswacht run did not start: {lines} {process.communicate(timeout=30)[1]}")
    return Running(process, lines, tmp)


def decrypting_everything(tmp: Path) -> list[str]:
    """Arguments of `start` for the shipped primary policy with passthrough off, in a lesson: the proxy itself
    makes the TLS connection to every server (a host passed through is the device's own TLS: no CA of the
    proxy's). The policy is written to `tmp`."""
    policy = tmp / "policy.toml"
    text = (ROOT / "policies" / "primary.toml").read_text(encoding="utf-8")
    assert "passthrough = true" in text
    policy.write_text(text.replace("passthrough = true", "passthrough = false"), encoding="utf-8")
    return ["--policy", str(policy), "--period", "lesson"]


def stopped_after(running: Running) -> Iterator[Running]:
    """For a fixture to `yield from` (or a `for` loop): the run, stopped afterwards unless it has ended already;
    also when the test failed (the generator is closed then), so that no `klaswacht run` is left behind."""
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()


def klaswacht(*args: str) -> subprocess.CompletedProcess[str]:
    """A `klaswacht` command that must succeed."""
    return subprocess.run([KLASWACHT, *args], capture_output=True, text=True, timeout=60, check=True)


def start_with_a_banned_pupil(data: Path, number: str, name: str, device: str, *extra: str) -> Running:
    """`klaswacht run` (with `extra`) on a roster of one pupil in groep 7-8 on `device`, banned for an hour."""
    roster = data / "roster.csv"
    roster.write_text(f"leerlingnummer;naam;groep;apparaat\n{number};{name};groep 7-8;{device}\n", encoding="utf-8")
    klaswacht("roster", "import", str(roster), "--data-dir", str(data))
    ends = (datetime.now().astimezone() + timedelta(hours=1)).isoformat(timespec="minutes")
    klaswacht("ban", number, "--until", ends, "--reason", "test", "--data-dir", str(data))
    return start(data, *extra)


def connect(running: Running, target: str) -> tuple[socket.socket, bytes]:
    """A CONNECT to `target` through the proxy: (the socket, the status line of the answer)."""
    host, port = running.proxy.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return sock, answer.split(b"\r\n", 1)[0]


def fetch(proxy: str, url: str, data: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, str]:
    """An HTTP request through the proxy: (status, body)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(request, timeout=20) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def fetch_headers(proxy: str, url: str, name: str = "Alt-Svc") -> tuple[int, list[str]]:
    """A GET through the proxy: (status, every value of the response header `name`)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
    try:
        with opener.open(url, timeout=20) as response:
            return response.status, response.headers.get_all(name) or []
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get_all(name) or []


def fetch_from(proxy: str, url: str, source: str = "127.0.0.1", headers: dict[str, str] | None = None,
               data: bytes | None = None) -> tuple[int, str]:
    """An HTTP request through the proxy from a chosen loopback source address (127.0.0.2, ...): (status, body)."""
    host, port = proxy.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=20, source_address=(source, 0))
    try:
        conn.request("POST" if data is not None else "GET", url, body=data, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def metric(running: Running, name: str) -> float:
    """The value of one sample (name with its labels, as printed) on the metrics endpoint; 0 if absent."""
    with urllib.request.urlopen(running.lines["metrics"], timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


def until(check: Callable[[], bool], seconds: float, step: float = 0.1) -> float | None:
    """Poll `check` until it holds, at most `seconds`: the time it took, or None if it never held."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            return None
        time.sleep(step)


def websocket_frame(payload: bytes, mask: bool = True) -> bytes:
    """One final text frame (payloads under 126 bytes); clients mask, servers do not."""
    head = bytes([0x81, (0x80 if mask else 0) | len(payload)])
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_websocket_frame(stream: Any) -> bytes:
    """The payload of one small frame read from a file-like stream, unmasked."""
    _, second = stream.read(2)
    length = second & 0x7F
    key = stream.read(4) if second & 0x80 else b""
    payload = stream.read(length)
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if key else payload


class QuietHandler(BaseHTTPRequestHandler):
    """A test server's request handler that writes no log lines; `answer` sends a 200 with `body`."""

    def answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], tls_folder: Path | None = None) -> Iterator[tuple[int, Path]]:
    """A threaded server for `handler` on 127.0.0.1: (its port, the CA file). With `tls_folder` it speaks HTTPS,
    its certificate for 'localhost' signed by a private CA made in that folder; without, plain HTTP (CA: none)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ca = Path()
    if tls_folder is not None:
        ca, cert, key = make_certificates(tls_folder, ("localhost",))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], ca
    finally:
        server.shutdown()
        server.server_close()


def client_hello(server_name: str) -> bytes:
    """A real TLS ClientHello naming `server_name` (Python's ssl module), as a browser sends it first."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()
