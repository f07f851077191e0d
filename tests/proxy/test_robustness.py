"""The proxy under awkward traffic: HTTP/2, big bodies, slow clients, and a database locked by another process."""

from __future__ import annotations

import contextlib
import http.client
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from proxy_helpers import Parent, Running, fetch, read_websocket_frame, start, websocket_frame


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory, parent: Parent) -> Iterator[Running]:
    running = start(tmp_path_factory.mktemp("robust"), "--period", "lesson", "--upstream", parent.url)
    yield running
    if running.process.poll() is None:
        running.stop()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (Debian package curl)")
def test_http2_search_is_blocked_on_the_intercepted_connection(lesson: Running) -> None:
    """An HTTP/2 request over TLS to Google with a forbidden search gets the 403 block page over HTTP/2."""
    result = subprocess.run(
        ["curl", "-s", "--http2", "-o", "-", "-w", "\n%{http_code} %{http_version}", "--max-time", "20",
         "--cacert", lesson.lines["ca"], "-x", lesson.proxy, "https://www.google.com/search?q=kankerjuf"],
        capture_output=True, text=True, timeout=30, check=False)
    body, _, status = result.stdout.rpartition("\n")
    assert status == "403 2", (status, result.stderr)
    assert '<html lang="nl">' in body


def test_a_big_upload_to_an_ordinary_site_is_streamed_through(lesson: Running, parent: Parent) -> None:
    """A 30 MB POST to an ordinary host reaches the parent whole; the proxy keeps serving afterwards."""
    body = b"x" * (30 * 1024 * 1024)
    status, _ = fetch(lesson.proxy, "http://www.speelgoedwinkel.nl/upload-form", data=body,
                      headers={"Content-Type": "application/octet-stream"})
    assert status == 200
    assert parent.seen[-1][:2] == ("POST", "http://www.speelgoedwinkel.nl/upload-form")
    assert fetch(lesson.proxy, "http://www.google.com/search?q=kankerjuf")[0] == 403


def test_a_slow_client_does_not_hold_up_others(lesson: Running) -> None:
    """A client that sends its request a byte at a time does not stop another client from being answered."""
    host, port = lesson.proxy.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as slow:
        slow.sendall(b"GET http://www.google.com/search?q=kanker")
        started = time.monotonic()
        assert fetch(lesson.proxy, "http://www.google.com/search?q=tyfuslijer")[0] == 403
        assert time.monotonic() - started < 10
        for byte in b"juf HTTP/1.1\r\nHost: www.google.com\r\n\r\n":
            slow.sendall(bytes([byte]))
        answer = slow.recv(200)
    assert answer.startswith(b"HTTP/1.1 403")


def test_blocking_goes_on_while_another_process_locks_the_database(tmp_path: Path, parent: Parent) -> None:
    """With klaswacht.db locked by another process, blocks are answered at once and their events arrive later."""
    running = start(tmp_path, "--period", "lesson", "--upstream", parent.url)
    try:
        assert fetch(running.proxy, "http://discord.com/")[0] == 403  # the store is open and writing
        locker = subprocess.Popen(
            [sys.executable, "-c",
             "import sqlite3, sys, time\n"
             f"c = sqlite3.connect({str(tmp_path / 'klaswacht.db')!r}, isolation_level=None)\n"
             "c.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(6)\nc.execute('COMMIT')\n"],
            stdout=subprocess.PIPE, text=True)
        try:
            assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
            started = time.monotonic()
            for n in range(30):
                assert fetch(running.proxy, f"http://www.google.com/search?q=kankerjuf+{n}")[0] == 403
            assert time.monotonic() - started < 5  # answered while the lock (6 s) still stands
            with closing(sqlite3.connect(tmp_path / "klaswacht.db", timeout=0)) as probe, \
                    pytest.raises(sqlite3.OperationalError):
                probe.execute("BEGIN IMMEDIATE")  # the lock really stood all that time
        finally:
            locker.wait(30)
            if locker.stdout is not None:
                locker.stdout.close()
    finally:
        assert running.stop() == 0
    result = subprocess.run([str(Path(sys.executable).parent / "klaswacht"), "events", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.count('"rule": "search-words"') == 30


def test_a_websocket_passes_through_and_the_proxy_keeps_serving(lesson: Running, parent: Parent) -> None:
    """A WebSocket to an ordinary host is upgraded through the proxy and a message makes the round trip."""
    host, port = lesson.proxy.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET http://chat-oefening.speelgoedwinkel.nl/ws HTTP/1.1\r\n"
                  b"Host: chat-oefening.speelgoedwinkel.nl\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        stream = s.makefile("rb")
        status = stream.readline()
        while stream.readline() not in (b"\r\n", b""):
            pass
        assert status.split()[1:2] == [b"101"], status
        s.sendall(websocket_frame(b"hallo juf"))
        assert read_websocket_frame(stream) == b"hallo juf"
        stream.close()
    assert parent.seen[-1][0] == "WEBSOCKET"
    assert fetch(lesson.proxy, "http://www.google.com/search?q=kankerjuf")[0] == 403


def post_chunked(running: Running, filename: str, content_type: str, data: bytes) -> tuple[int, str, int]:
    """POST `data` as the one file of a form, sent chunked (no length known) in 16 KB pieces, to an ordinary host
    through the proxy: (status, page, length of the whole body sent)."""
    boundary = "----klaswacht"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        for offset in range(0, len(body), 16_384):
            yield body[offset:offset + 16_384]

    host, port = running.proxy.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        connection.request("POST", "http://www.speelgoedwinkel.nl/upload", body=chunks(), encode_chunked=True,
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                    "Host": "www.speelgoedwinkel.nl"})
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace"), len(body)
    finally:
        connection.close()


def test_a_chunked_photo_upload_is_stopped(lesson: Running, parent: Parent) -> None:
    """A photo sent chunked (no length known) to an ordinary host never arrives there."""
    before = len(parent.seen)
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 200_000
    status, page = 0, ""
    # The proxy may answer and close before the client has sent every chunk: refused all the same.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, http.client.IncompleteRead):
        status, page, _ = post_chunked(lesson, "klas.jpg", "image/jpeg", jpeg)
    # The photo never leaves the gateway. The pupil mostly gets the block page; when the host answers the
    # blanked request before the proxy can swap its answer, mitmproxy reports a 502 (see the closing note).
    assert all(headers.get("x-seen-jpeg") != "True" for _, _, headers in parent.seen[before:])
    assert status in (0, 403, 502)
    if status == 403:
        assert "filmpjes versturen doen we niet op school." in page


def test_a_chunked_upload_that_is_no_photo_arrives_whole(lesson: Running, parent: Parent) -> None:
    """A chunked file upload is held back while its first 64 KB are sniffed, then sent on whole: the host gets
    every byte in one body (before, each held-back chunk reached it as an empty chunk, the end of the body)."""
    before = len(parent.seen)
    document = b"%PDF-1.7\n" + b"spreekbeurt over de Waddenzee\n" * 8_000  # 240 KB, not a photo
    status, page, sent = post_chunked(lesson, "werkstuk.pdf", "application/pdf", document)
    assert status == 200 and "upstream page" in page
    posts = [headers for method, _, headers in parent.seen[before:] if method == "POST"]
    assert [headers["x-seen-body-bytes"] for headers in posts] == [str(sent)]
