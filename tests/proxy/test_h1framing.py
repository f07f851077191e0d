"""An HTTP/2 device's request body reaches an HTTP/1.1 server whole, with or without a length (proxy/h1framing.py).

A real `klaswacht run` decrypts every host; a hyper-h2 device sends through it to an HTTP/1.1 server (Python's
http.server behind a private CA) that reads a body only as its headers frame it, as servers do. Without the
framing the server read an empty body and took the upload for a next request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from h2_device import Device, body_bytes
from mitmproxy.test import tutils
from proxy_helpers import OWN, QuietHandler, Running, decrypting_everything, serving, start, stopped_after

from proxy.h1framing import framed


@dataclass
class Seen:
    """What the server got: per request its method, framing headers and the body's digest and length."""

    requests: list[tuple[str, str | None, str | None, int, str]] = field(default_factory=list)


def read_chunked(handler: QuietHandler) -> bytes:
    body = bytearray()
    while size := int(handler.rfile.readline().split(b";")[0].strip(), 16):
        body += handler.rfile.read(size)
        handler.rfile.readline()
    while handler.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers, then the end
        pass
    return bytes(body)


@pytest.fixture
def through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Running, int, Seen]]:
    """`klaswacht run` decrypting everything, and an HTTP/1.1 server behind it: (the run, the server's port, what it
    got). The server answers with the number of body bytes it read."""
    seen = Seen()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            length, coding = self.headers.get("Content-Length"), self.headers.get("Transfer-Encoding")
            body = read_chunked(self) if coding == "chunked" else self.rfile.read(int(length or 0))
            seen.requests.append((self.command, length, coding, len(body), hashlib.sha256(body).hexdigest()))
            self.answer(str(len(body)).encode())

        do_PUT = do_POST

    (tmp_path / "origin-h1").mkdir()
    with serving(Handler, tmp_path / "origin-h1") as (port, ca):
        monkeypatch.setenv("KLASWACHT_UPSTREAM_CA", str(ca))
        for running in stopped_after(start(tmp_path / "data", *decrypting_everything(tmp_path), *OWN)):
            yield running, port, seen


CHUNKED = (None, "chunked")


@pytest.mark.parametrize(("content_type", "size", "framing"), [
    ("application/json", 100, ("100", None)),
    ("application/json", 3_000_000, CHUNKED),
    ("application/octet-stream", 100, CHUNKED),
    ("application/octet-stream", 3_000_000, CHUNKED),
], ids=["held-whole", "over-what-is-held", "sniffed-small", "sniffed-large"])
def test_a_body_without_a_length_arrives_whole(through: tuple[Running, int, Seen], content_type: str, size: int,
                                               framing: tuple[str | None, str | None]) -> None:
    """A body mitmproxy holds whole for the rules (up to 1 MB) gets its length; one streamed on (larger, or sniffed
    for photos from its first bytes, as a body that may carry a file is) is sent chunked. Either way the server
    reads all of it, and the device gets the server's answer."""
    running, port, seen = through
    body = body_bytes(size)
    device = Device(running, port)
    try:
        stream = device.request("POST", "/upload", end=False, content_type=content_type)
        assert device.upload(stream, body) == size
        assert device.status.get(stream) == b"200", bytes(device.bodies[stream][:300])
        assert bytes(device.bodies[stream]) == str(size).encode()
        assert seen.requests == [("POST", *framing, size, hashlib.sha256(body).hexdigest())]
    finally:
        device.close()


def test_requests_on_one_connection_stay_apart(through: tuple[Running, int, Seen]) -> None:
    """An empty PUT gets `content-length: 0`, a body with its length keeps it; the server's connection carries
    them one after the other and sees each as it was sent."""
    running, port, seen = through
    device = Device(running, port)
    try:
        empty = device.request("PUT", "/empty", end=True)
        device.finish(empty)
        assert device.status.get(empty) == b"200" and bytes(device.bodies[empty]) == b"0"
        body = b"huiswerk"
        stream = device.request("POST", "/upload", end=False, content_type="text/plain", length=len(body))
        device.upload(stream, body)
        assert device.status.get(stream) == b"200" and bytes(device.bodies[stream]) == b"8"
        assert [r[:4] for r in seen.requests] == [("PUT", "0", None, 0), ("POST", "8", None, 8)]
    finally:
        device.close()


def test_framed_changes_only_a_copy_of_a_request_that_needs_it() -> None:
    """HTTP/1.1 requests and framed ones are left as they are; the device's request itself is never changed."""
    h1 = tutils.treq(method=b"POST", http_version=b"HTTP/1.1", content=b"abc")
    assert framed(h1, end_stream=False) is h1
    h2 = tutils.treq(method=b"POST", http_version=b"HTTP/2.0", content=b"abc")
    del h2.headers["content-length"]
    copy = framed(h2, end_stream=False)
    assert copy is not h2 and copy.headers["content-length"] == "3" and "content-length" not in h2.headers
    h2.data.content = None  # streamed: mitmproxy has not held the body
    assert framed(h2, end_stream=False).headers["transfer-encoding"] == "chunked"
    get = tutils.treq(method=b"GET", http_version=b"HTTP/2.0", content=b"")
    del get.headers["content-length"]
    assert framed(get, end_stream=True) is get
    h2.headers["content-length"] = "3"
    assert framed(h2, end_stream=False) is h2
