"""HTTP/2 memory stays bounded when a device stops reading a decrypted stream (issue 6, proxy/h2flow.py).

A real `klaswacht run` decrypts every host; a device speaks HTTP/2 to it (hyper-h2 over a real TLS connection
through CONNECT), and so does the server (hyper-h2 behind a private CA). The device stops opening its window,
as a browser does for a paused video; the test then watches how much the server managed to send. Without the
bound the proxy acknowledges everything and the server sends all of it (64 MiB), into the proxy's memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest
from h2_device import CHUNK, Device, body_bytes
from proxy_helpers import OWN, QuietHandler, Running, decrypting_everything, serving, start, stopped_after

from bench.services import make_certificates
from proxy.h2flow import STREAM_WINDOW

BIG = 64 * 1024 * 1024
UPLOAD = 64 * 1024 * 1024
H2_DEFAULT_WINDOW = 65_535
BROWSER_CONNECTION_WINDOW = 15 * 1024 * 1024


@dataclass
class Origin:
    """An HTTP/2 server over TLS: `/big` sends BIG bytes as fast as its window allows, `/sink` reads an upload
    without ever acknowledging it (its window stays at the default 64 KiB), `/small` answers a few bytes,
    `/upload` keeps what it is sent and answers "stored" at its end, `/slow` reads an upload slowly and answers the
    number of bytes it got. It waits `opening` seconds before its TLS handshake (a server far away)."""

    port: int = 0
    ca: Path = Path()
    opening: float = 0.0
    sent: int = 0
    received: int = 0
    uploaded: bytearray = field(default_factory=bytearray)
    stop: threading.Event = field(default_factory=threading.Event)

    def serve(self, listener: socket.socket, context: ssl.SSLContext) -> None:
        listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self.connection, args=(raw, context), daemon=True).start()

    def connection(self, raw: socket.socket, context: ssl.SSLContext) -> None:
        time.sleep(self.opening)
        with context.wrap_socket(raw, server_side=True) as sock:
            sock.settimeout(0.2)
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
            conn.initiate_connection()
            sending: dict[int, bytes] = {}
            uploads: set[int] = set()
            slow: dict[int, int] = {}  # stream: bytes received
            while not self.stop.is_set():
                if slow:
                    time.sleep(0.005)  # slower than a device on loopback
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    data = None
                except OSError:
                    return
                if data == b"":
                    return
                for event in conn.receive_data(data) if data else ():
                    if isinstance(event, h2.events.RequestReceived):
                        path = dict(event.headers).get(b":path", b"")
                        if path in (b"/big", b"/small"):
                            conn.send_headers(event.stream_id, [(":status", "200")])
                            sending[event.stream_id] = body_bytes(BIG) if path == b"/big" else b"small"
                        elif path == b"/upload":
                            uploads.add(event.stream_id)
                        elif path == b"/slow":
                            slow[event.stream_id] = 0
                    elif isinstance(event, h2.events.DataReceived) and event.stream_id in slow:
                        slow[event.stream_id] += len(event.data)
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.DataReceived) and event.stream_id in uploads:
                        self.uploaded += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.DataReceived):
                        self.received += len(event.data)  # and never acknowledged
                    elif isinstance(event, h2.events.StreamEnded) and event.stream_id in slow:
                        conn.send_headers(event.stream_id, [(":status", "200")])
                        sending[event.stream_id] = str(slow.pop(event.stream_id)).encode()
                    elif isinstance(event, h2.events.StreamEnded) and event.stream_id in uploads:
                        conn.send_headers(event.stream_id, [(":status", "200")])
                        sending[event.stream_id] = b"stored"
                for stream_id, rest in list(sending.items()):
                    while rest and min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size):
                        size = min(len(rest), conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
                        conn.send_data(stream_id, rest[:size], end_stream=size == len(rest))
                        self.sent += size
                        rest = rest[size:]
                    sending[stream_id] = rest
                    if not rest:
                        del sending[stream_id]
                out = conn.data_to_send()
                if out:
                    sock.settimeout(10)  # a busy proxy may take a while to read; 0.2 s is for the polling above
                    try:
                        sock.sendall(out)
                    except OSError:  # the proxy closed the connection (a test ending, a stream given up)
                        return
                    sock.settimeout(0.2)


@pytest.fixture
def h2_origin(tmp_path: Path) -> Iterator[Origin]:
    (tmp_path / "origin").mkdir()
    ca, cert, key = make_certificates(tmp_path / "origin", ("localhost",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    listener = socket.create_server(("127.0.0.1", 0))
    origin = Origin(port=listener.getsockname()[1], ca=ca)
    thread = threading.Thread(target=origin.serve, args=(listener, context), daemon=True)
    thread.start()
    yield origin
    origin.stop.set()
    thread.join(5)
    listener.close()


def assert_whole_download(device: Device, stream: int) -> None:
    """Read `stream` (a GET of /big) to its end: it ends, is not reset, and brings BIG bytes unchanged."""
    device.finish(stream)
    assert stream in device.ended and stream not in device.reset, len(device.bodies[stream])
    assert hashlib.sha256(device.bodies[stream]).digest() == hashlib.sha256(body_bytes(BIG)).digest()


def settled(value: Callable[[], int], step: Callable[[], None], seconds: float = 30) -> int:
    """`value` once it has not grown for 1.5 s of `step`s (or after `seconds`)."""
    deadline, last, since = time.monotonic() + seconds, -1, time.monotonic()
    while time.monotonic() < deadline:
        step()
        now = value()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > 1.5:
            break
    return last


@pytest.fixture
def decrypting(tmp_path: Path, h2_origin: Origin, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    """`klaswacht run` with the primary policy, decrypting every host, trusting the origin's private CA."""
    monkeypatch.setenv("KLASWACHT_UPSTREAM_CA", str(h2_origin.ca))
    yield from stopped_after(start(tmp_path / "data", *decrypting_everything(tmp_path), *OWN))


def test_a_stream_the_device_stops_reading_holds_at_most_one_window_in_the_proxy(
        decrypting: Running, h2_origin: Origin) -> None:
    """The server can send only what the device's window and the proxy's stream window take; once the device
    reads again, the whole body arrives, unchanged."""
    device = Device(decrypting, h2_origin.port)
    try:
        stream = device.request("GET", "/big")
        sent = settled(lambda: h2_origin.sent, lambda: device.pump(acknowledge=False))
        assert device.status.get(stream) == b"200"
        # What the device may hold unread (its 64 KiB window), one proxy window, and frames in flight.
        assert H2_DEFAULT_WINDOW <= sent <= H2_DEFAULT_WINDOW + STREAM_WINDOW + 4 * CHUNK, sent
        assert_whole_download(device, stream)
    finally:
        device.close()


def test_an_upload_the_server_stops_reading_holds_at_most_one_window_in_the_proxy(
        decrypting: Running, h2_origin: Origin) -> None:
    """The other way round: the device can send what mitmproxy holds to judge (1 MB), what arrives while the
    server connection opens (acknowledged at once: milliseconds here), the server's window and one proxy window;
    not the whole upload (64 MiB)."""
    device = Device(decrypting, h2_origin.port)
    try:
        stream = device.request("POST", "/sink", end=False)
        upload = body_bytes(UPLOAD)
        offset = 0

        def send_what_fits() -> None:
            nonlocal offset
            while offset < len(upload):
                size = min(device.conn.local_flow_control_window(stream), CHUNK, len(upload) - offset)
                if size <= 0:
                    break
                device.conn.send_data(stream, upload[offset:offset + size])
                offset += size
            device.flush()
            device.pump(acknowledge=True)

        sent = settled(lambda: offset, send_what_fits)
        assert h2_origin.received > 0, "the upload never reached the server"
        assert sent <= 16 * 1024 * 1024, sent  # about 2 MB here; the margin is for the connection's opening
    finally:
        device.close()


@dataclass
class H1Origin:
    """An HTTP/1.1 server over TLS (no HTTP/2): `/big` sends BIG bytes, counting what its socket took."""

    port: int = 0
    sent: int = 0


@pytest.fixture
def h1_decrypting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Running, H1Origin]]:
    origin = H1Origin()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            if self.path == "/small":
                self.answer(b"small")
                return
            body = body_bytes(BIG)
            self.send_response(200)
            self.send_header("Content-Length", str(BIG))
            self.end_headers()
            with contextlib.suppress(OSError):  # the proxy gives up on the stream
                for start in range(0, BIG, CHUNK):
                    self.wfile.write(body[start:start + CHUNK])
                    origin.sent = start + CHUNK

    (tmp_path / "origin-h1").mkdir()
    with serving(Handler, tmp_path / "origin-h1") as (port, ca):
        origin.port = port
        monkeypatch.setenv("KLASWACHT_UPSTREAM_CA", str(ca))
        for running in stopped_after(start(tmp_path / "data", *decrypting_everything(tmp_path), *OWN)):
            yield running, origin


def test_a_server_without_http2_is_held_back_when_the_device_stops_reading(
        h1_decrypting: tuple[Running, H1Origin]) -> None:
    """An HTTP/1.1 server has no window to hold back: the proxy stops reading its socket instead (TCP), so it
    can send little more than the socket buffers take; the device's other streams carry on, and once the device
    reads again the whole body arrives, unchanged."""
    running, origin = h1_decrypting
    device = Device(running, origin.port)
    device.conn.increment_flow_control_window(BROWSER_CONNECTION_WINDOW)  # the paused stream holds its own only
    device.flush()
    try:
        stream = device.request("GET", "/big")
        sent = settled(lambda: origin.sent, lambda: device.pump(acknowledge=False))
        assert stream not in device.reset and len(device.bodies[stream]) <= H2_DEFAULT_WINDOW
        assert sent < BIG // 4, sent  # the proxy's STREAM_WINDOW, and what the kernel buffers on loopback
        other = device.request("GET", "/small")
        deadline = time.monotonic() + 20
        while other not in device.ended and time.monotonic() < deadline:
            device.pump(acknowledge=False)
        assert device.status.get(other) == b"200" and bytes(device.bodies[other]) == b"small"
        assert_whole_download(device, stream)
    finally:
        device.close()


def test_a_device_that_reads_slower_than_a_server_without_http2_sends_gets_the_whole_body(
        h1_decrypting: tuple[Running, H1Origin]) -> None:
    """A device that keeps reading, with hyper-h2's default window, but slower than the server sends: its
    download is not cut off (before, it was reset once 2 MiB waited in the proxy: after 64 KiB here)."""
    running, origin = h1_decrypting
    device = Device(running, origin.port)
    try:
        stream = device.request("GET", "/big")
        deadline = time.monotonic() + 150  # 64 MiB read slowly; a busy CI machine is slower still
        while stream not in device.ended and stream not in device.reset and time.monotonic() < deadline:
            device.pump(acknowledge=True)
            time.sleep(0.002)  # a device slower than loopback
        assert stream in device.ended and stream not in device.reset, len(device.bodies[stream])
        assert hashlib.sha256(device.bodies[stream]).digest() == hashlib.sha256(body_bytes(BIG)).digest()
    finally:
        device.close()


@pytest.mark.parametrize(("filename", "content_type", "head", "arrives"), [
    ("klas.jpg", "image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", False),
    ("werkstuk.pdf", "application/pdf", b"%PDF-1.7\n", True),
])
def test_an_upload_over_http2_larger_than_what_is_held_is_sniffed(
        decrypting: Running, h2_origin: Origin, filename: str, content_type: str, head: bytes, arrives: bool) -> None:
    """Over 1 MB a request body is streamed, not held whole for the rules; over HTTP/2 (no length, as chunked
    HTTP/1.1) its first 64 KB are sniffed all the same: a photo's bytes never reach the server, a document
    arrives whole."""
    boundary = "----klaswacht"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + head + body_bytes(1_500_000) \
        + f"\r\n--{boundary}--\r\n".encode()
    device = Device(decrypting, h2_origin.port)
    try:
        stream = device.request("POST", "/upload", end=False, content_type=f"multipart/form-data; boundary={boundary}")
        device.upload(stream, body)
        if arrives:
            assert device.status.get(stream) == b"200" and bytes(device.bodies[stream]) == b"stored"
            assert bytes(h2_origin.uploaded) == body
        else:
            assert head not in h2_origin.uploaded and body_bytes(1_500_000)[:CHUNK] not in h2_origin.uploaded
            assert device.status.get(stream) == b"403", device.status
            assert "versturen doen we niet op school" in device.bodies[stream].decode("utf-8", "replace")
    finally:
        device.close()


def test_a_large_upload_from_an_http2_device_reaches_an_http1_server_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP/2 towards the device, HTTP/1.1 towards the server: an upload of 4 MB (with its length, as browsers
    send one) is streamed past mitmproxy's 1 MB and arrives whole; nothing waits for an acknowledgement that never
    comes (the device's window is 256 KiB, and it starts sending while the server connection opens)."""
    digests: list[str] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers["Content-Length"]))
            digests.append(hashlib.sha256(data).hexdigest())
            self.answer(str(len(data)).encode())

    upload = body_bytes(4_000_000)
    (tmp_path / "origin-h1").mkdir()
    with serving(Handler, tmp_path / "origin-h1") as (port, ca):
        monkeypatch.setenv("KLASWACHT_UPSTREAM_CA", str(ca))
        for running in stopped_after(start(tmp_path / "data", *decrypting_everything(tmp_path), *OWN)):
            device = Device(running, port)
            try:
                stream = device.request("POST", "/upload", end=False, length=len(upload))
                offset = device.upload(stream, upload)
                assert offset == len(upload), (offset, device.status, bytes(device.bodies[stream][:300]))
                assert device.status.get(stream) == b"200" and bytes(device.bodies[stream]) == str(len(upload)).encode()
                assert digests == [hashlib.sha256(upload).hexdigest()]
            finally:
                device.close()


@pytest.mark.parametrize("opening", [0.0, 1.0], ids=["server-at-once", "server-opens-slowly"])
def test_an_upload_from_a_device_without_http2_to_a_slower_server_arrives_whole(
        decrypting: Running, h2_origin: Origin, opening: float) -> None:
    """An HTTP/1.1 device has no window to hold back: the proxy stops reading its socket while the server is
    behind (TCP), rather than resetting the upload once 2 MiB wait for a server that reads slower. What the device
    sent while the server connection opened (all of it, when that takes a second) reaches the server's side at
    once, and is sent on as the server reads, not reset."""
    h2_origin.opening = opening
    host, proxy_port = decrypting.proxy.removeprefix("http://").split(":")
    context = ssl.create_default_context(cafile=decrypting.lines["ca"])
    context.set_alpn_protocols(["http/1.1", "h2"])  # the proxy takes HTTP/1.1, the server (offered both) h2
    conn = http.client.HTTPSConnection(host, int(proxy_port), timeout=60, context=context)
    conn.set_tunnel("localhost", h2_origin.port)
    try:
        size = 6 * 1024 * 1024  # past the 2 MiB at which a stream used to be reset
        conn.request("POST", "/slow", body=body_bytes(size), headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, str(size).encode())
    finally:
        conn.close()


def test_an_upload_from_an_http2_device_sent_while_the_server_connection_opens_arrives_whole(
        decrypting: Running, h2_origin: Origin) -> None:
    """HTTP/2 on both sides: what the device sends while the server connection opens is acknowledged at once
    (nothing would acknowledge it later), so it all reaches the server's side together; it is sent on as the
    slow server reads, not reset for being more than 2 MiB."""
    h2_origin.opening = 1.0
    device = Device(decrypting, h2_origin.port)
    try:
        size = 6 * 1024 * 1024
        upload = body_bytes(size)
        stream = device.request("POST", "/slow", end=False, content_type="application/octet-stream", length=size)
        offset = device.upload(stream, upload)
        assert stream not in device.reset, offset
        assert device.status.get(stream) == b"200" and bytes(device.bodies[stream]) == str(size).encode()
    finally:
        device.close()
