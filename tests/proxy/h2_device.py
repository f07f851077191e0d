"""A pupil's device speaking HTTP/2 (hyper-h2 over real TLS) through the proxy's CONNECT tunnel, for tests."""

from __future__ import annotations

import hashlib
import ssl
import time

import h2.config
import h2.connection
import h2.events
from proxy_helpers import Running, connect

CHUNK = 16_384


def body_bytes(size: int) -> bytes:
    """`size` bytes that are not all alike, so a lost or repeated chunk changes the hash."""
    block = hashlib.sha256(b"klaswacht").digest() * (CHUNK // 32)
    return b"".join(block[i % 32:] + block[:i % 32] for i in range(size // CHUNK + 1))[:size]


class Device:
    """A pupil's device speaking HTTP/2 through the proxy's CONNECT tunnel; it acknowledges only when told."""

    def __init__(self, running: Running, port: int) -> None:
        raw, status = connect(running, f"localhost:{port}")
        assert status.split(b" ")[1] == b"200", status
        context = ssl.create_default_context(cafile=running.lines["ca"])
        context.set_alpn_protocols(["h2"])
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.sock.settimeout(0.2)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.bodies: dict[int, bytearray] = {}
        self.ended: set[int] = set()
        self.reset: set[int] = set()
        self.status: dict[int, bytes] = {}
        self.unread: dict[int, int] = {}  # data read but not acknowledged, per stream

    def flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def request(self, method: str, path: str, *, end: bool = True, content_type: str = "text/plain",
                length: int | None = None) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", "https"), (":path", path), (":authority", "localhost"),
                   ("content-type", content_type)]
        self.conn.send_headers(stream_id, headers + ([("content-length", str(length))] if length is not None else []),
                               end_stream=end)
        self.flush()
        self.bodies[stream_id] = bytearray()
        return stream_id

    def pump(self, acknowledge: bool) -> None:
        """Read what has arrived (for at most 0.2 s); acknowledge the data read only if `acknowledge`."""
        if acknowledge:
            for stream_id, size in self.unread.items():
                self.conn.acknowledge_received_data(size, stream_id)
            self.unread.clear()
            self.flush()
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        assert data, "the proxy closed the connection"
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                self.status[event.stream_id] = dict(event.headers)[b":status"]
            elif isinstance(event, h2.events.DataReceived):
                self.bodies[event.stream_id] += event.data
                if acknowledge:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                else:
                    self.unread[event.stream_id] = self.unread.get(event.stream_id, 0) + event.flow_controlled_length
            elif isinstance(event, h2.events.StreamEnded):
                self.ended.add(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self.reset.add(event.stream_id)
        self.flush()

    def finish(self, stream: int, seconds: float = 60) -> None:
        """Read, acknowledging, until `stream` ends or is reset (or `seconds` pass)."""
        deadline = time.monotonic() + seconds
        while stream not in self.ended and stream not in self.reset and time.monotonic() < deadline:
            self.pump(acknowledge=True)

    def upload(self, stream: int, body: bytes, seconds: float = 60) -> int:
        """Send `body` on `stream` as its window allows, reading and acknowledging, until the stream ends or is reset
        (or `seconds` pass); sending stops early when an answer comes. Returns how many bytes were sent."""
        offset, deadline = 0, time.monotonic() + seconds
        while stream not in self.ended and stream not in self.reset and time.monotonic() < deadline:
            while offset < len(body) and stream not in self.status:
                size = min(self.conn.local_flow_control_window(stream), CHUNK, len(body) - offset)
                if size <= 0:
                    break
                offset += size
                self.conn.send_data(stream, body[offset - size:offset], end_stream=offset == len(body))
            self.flush()
            self.pump(acknowledge=True)
        return offset

    def close(self) -> None:
        self.sock.close()
