"""What pupils send, through a real `klaswacht run` (issue 4, points 6-8): uploads, personal data, threats.

Primary policy: photo uploads blocked to every host outside the allow list, personal data blocked
and explained. Secondary: uploads blocked to chat and social hosts even when a grant opens them,
personal data alerted. Threats pass and raise a severe alert. A blocked request never reaches the parent.
"""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Iterator

import pytest
from proxy_helpers import KLASWACHT, ROOT, Parent, Running, fetch, start, until

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200)
SITE = "http://www.speelgoedwinkel.nl"
UPLOAD_TEXT = "Foto&#x27;s en filmpjes versturen doen we niet op school."
PERSONAL_TEXT = "Je telefoonnummer, adres of e-mail deel je niet op internet."


def multipart(filename: str, payload: bytes) -> tuple[bytes, dict[str, str]]:
    """A form post with one text field and one file part, as a browser sends it."""
    body = (b'--XX\r\nContent-Disposition: form-data; name="caption"\r\n\r\nkijk!\r\n'
            b'--XX\r\nContent-Disposition: form-data; name="file"; filename="' + filename.encode()
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n' + payload + b"\r\n--XX--\r\n")
    return body, {"Content-Type": "multipart/form-data; boundary=XX"}


def send(proxy: str, method: str, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """Any method with a body through the proxy: (status, body)."""
    host, port = proxy.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, url, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def events(running: Running) -> list[dict[str, object]]:
    """The stored events, after the run has stopped (events flushed)."""
    if running.process.poll() is None:
        assert running.stop() == 0
    result = subprocess.run([KLASWACHT, "events", "--data-dir", str(running.data_dir)],
                            capture_output=True, text=True, timeout=60, check=True)
    return [json.loads(line) for line in result.stdout.splitlines()]


def klaswacht(*args: str) -> None:
    subprocess.run([KLASWACHT, *args], capture_output=True, text=True, timeout=60, check=True)


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory, parent: Parent) -> Iterator[Running]:
    running = start(tmp_path_factory.mktemp("out-primary"), "--period", "lesson", "--upstream", parent.url)
    yield running
    if running.process.poll() is None:
        running.stop()


@pytest.fixture(scope="module")
def secondary(tmp_path_factory: pytest.TempPathFactory, parent: Parent) -> Iterator[Running]:
    running = start(tmp_path_factory.mktemp("out-secondary"), "--policy", str(ROOT / "policies/secondary.toml"),
                    "--period", "lesson", "--upstream", parent.url)
    yield running
    if running.process.poll() is None:
        running.stop()


@pytest.mark.parametrize(("method", "path", "body", "headers"), [
    ("POST", "/upload", *multipart("vakantie.bin", JPEG)),  # found by its magic bytes
    ("POST", "/upload", *multipart("opname.m4a", b"not sniffable")),  # found by its file name
    ("PUT", "/photo", JPEG, {"Content-Type": "application/octet-stream"}),  # a raw image body
    ("PUT", "/photo", b"...", {"Content-Type": "image/heic"}),  # decided on the headers
    ("POST", "/upload?uploadType=resumable", b"{}", {"Content-Type": "application/json",
                                                     "X-Upload-Content-Type": "video/mp4"}),
])
def test_primary_blocks_uploads_to_any_host_outside_the_allow_list(
        primary: Running, parent: Parent, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
    """Multipart files, raw image bodies and announced resumable uploads get the block page; nothing leaves."""
    before = len(parent.seen)
    status, page = send(primary.proxy, method, SITE + path, body, headers)
    assert status == 403 and UPLOAD_TEXT in page
    assert len(parent.seen) == before


def test_primary_blocks_a_streamed_photo_without_sending_it(primary: Running, parent: Parent) -> None:
    """A 3 MB photo (streamed, never held whole) is sniffed from its first bytes: the block page answers and
    the host got zeros, not the photo."""
    status, page = send(primary.proxy, "POST", SITE + "/big", *multipart("x.jpg", JPEG + b"\x01" * (3 << 20)))
    assert status == 403 and UPLOAD_TEXT in page


def test_primary_lets_a_photo_go_to_the_allow_list(primary: Running, parent: Parent) -> None:
    """School tools (Magister) get uploads: the allow list is never read."""
    status, _ = send(primary.proxy, "POST", "http://accounts.magister.net/upload", *multipart("x.jpg", JPEG))
    assert status == 200
    assert parent.seen[-1][:2] == ("POST", "http://accounts.magister.net/upload")


def test_primary_lets_ordinary_posts_through(primary: Running, parent: Parent) -> None:
    """A form post without photos or personal data reaches the host unchanged."""
    status, _ = fetch(primary.proxy, SITE + "/zoek", b"q=lego+duplo",
                      {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and parent.seen[-1][:2] == ("POST", SITE + "/zoek")


@pytest.mark.parametrize("body", [b"naam=Sanne&telefoon=06-12345678", b"bericht=mail+me+sanne%40gmail.com",
                                  b"adres=Dorpsstraat+12%2C+1234+AB+Ergens"])
def test_primary_blocks_personal_data_in_a_form_post(primary: Running, parent: Parent, body: bytes) -> None:
    """A phone number, e-mail address or address in a form post gets the block page that explains why."""
    before = len(parent.seen)
    status, page = fetch(primary.proxy, SITE + "/aanmelden", body,
                         {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403 and PERSONAL_TEXT in page
    assert len(parent.seen) == before


def test_primary_threat_in_json_passes_with_a_severe_alert(primary: Running, parent: Parent) -> None:
    """A threat in a JSON message passes to the host; the stored alert is severe and holds no message text."""
    message = json.dumps({"message": {"text": "ik maak je dood na school, echt waar"}}).encode()
    status, _ = fetch(primary.proxy, SITE + "/api/chat", message, {"Content-Type": "application/json"})
    assert status == 200 and parent.seen[-1][:2] == ("POST", SITE + "/api/chat")
    stored = events(primary)
    threat = [e for e in stored if e["rule"] == "threat"]
    assert threat and threat[0]["action"] == "alert" and threat[0]["severity"] == "severe"
    assert threat[0]["category"] == "threat" and threat[0]["terms"] == ["ik maak je dood"]
    personal = [e for e in stored if e["rule"] == "personal-info"]
    assert {t for e in personal for t in e["terms"]} == {"telefoonnummer", "e-mailadres", "adres"}
    assert all(e["action"] == "block" for e in personal)
    uploads = [e for e in stored if e["rule"] == "upload"]
    assert len(uploads) == 6 and {t for e in uploads for t in e["terms"]} == {"foto", "video", "audio"}
    text = json.dumps(stored)
    for secret in ("06-12345678", "gmail", "Dorpsstraat", "na school", "kijk!"):
        assert secret not in text


def test_secondary_blocks_uploads_to_social_even_with_a_grant(secondary: Running, parent: Parent) -> None:
    """A grant opens Instagram for browsing, but a photo upload to it stays blocked; other hosts get uploads."""
    klaswacht("grant", "school", "social", "--minutes", "30", "--data-dir", str(secondary.data_dir))
    assert until(lambda: fetch(secondary.proxy, "http://www.instagram.com/")[0] == 200, 3.0) is not None
    before = len(parent.seen)
    status, page = send(secondary.proxy, "POST", "http://www.instagram.com/upload", *multipart("x.jpg", JPEG))
    assert status == 403 and UPLOAD_TEXT in page and len(parent.seen) == before
    assert send(secondary.proxy, "POST", SITE + "/upload", *multipart("x.jpg", JPEG))[0] == 200


def test_secondary_alerts_personal_data_and_lets_it_pass(secondary: Running, parent: Parent) -> None:
    """Personal data in a form post passes on the secondary policy; the teacher gets a normal alert."""
    status, _ = fetch(secondary.proxy, SITE + "/aanmelden", b"naam=Sanne&telefoon=%2B31+6+12345678",
                      {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and parent.seen[-1][:2] == ("POST", SITE + "/aanmelden")
    stored = events(secondary)
    personal = [e for e in stored if e["rule"] == "personal-info"]
    assert [(e["action"], e["terms"], e["severity"]) for e in personal] == [("alert", ["telefoonnummer"], "normal")]
    uploads = [e for e in stored if e["rule"] == "upload"]
    assert [(e["action"], e["host"], e["category"]) for e in uploads] == [("block", "www.instagram.com", "social")]
