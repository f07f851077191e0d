"""filters.uploads: photo, video and sound uploads from headers, multipart parts and magic bytes."""

from __future__ import annotations

import pytest

from filters.uploads import carries_files, kind_of_filename, kind_of_type, sniff, upload_from_headers, upload_in_body

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
MP = "multipart/form-data; boundary=XX"


def multipart(*parts: tuple[str, bytes]) -> bytes:
    """A multipart/form-data body with boundary XX from (part headers, payload) pairs."""
    return b"".join(b"--XX\r\n" + h.encode() + b"\r\n\r\n" + p + b"\r\n" for h, p in parts) + b"--XX--\r\n"


@pytest.mark.parametrize(("data", "kind"), [
    (JPEG, "foto"),
    (b"\x89PNG\r\n\x1a\n....", "foto"),
    (b"GIF89a....", "foto"),
    (b"GIF87a....", "foto"),
    (b"II*\x00....", "foto"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "foto"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", "video"),
    (b"RIFF\x00\x00\x00\x00XXXX", None),
    (b"\x00\x00\x00\x18ftypheic\x00\x00", "foto"),
    (b"\x00\x00\x00\x18ftypisom\x00\x00", "video"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00", "video"),
    (b"\x00\x00\x00\x18ftypM4A \x00\x00", "audio"),
    (b"\x1a\x45\xdf\xa3\x9f", "video"),
    (b"OggS\x00\x02", "audio"),
    (b"ID3\x04\x00", "audio"),
    (b"\xff\xfb\x90\x00", "audio"),
    (b"fLaC\x00", "audio"),
    (b"\xff", None),
    (b"", None),
    (b"hallo wereld", None),
    (b"%PDF-1.7", None),
])
def test_sniff(data: bytes, kind: str | None) -> None:
    """Magic numbers of JPEG, PNG, GIF, TIFF, WebP, HEIC, MP4/MOV, WebM, OGG, MP3, FLAC and WAV name the kind."""
    assert sniff(data) == kind


@pytest.mark.parametrize(("header", "kind"), [
    ("image/jpeg", "foto"), ("Video/MP4; codecs=avc1", "video"), ("audio/ogg", "audio"),
    ("application/json", None), ("", None), ("image", None), ("imagejpeg/x", None),
])
def test_kind_of_type(header: str, kind: str | None) -> None:
    """Only an image/, video/ or audio/ media type names a kind; malformed headers name none."""
    assert kind_of_type(header) == kind


@pytest.mark.parametrize(("name", "kind"), [
    ("IMG_0042.HEIC", "foto"), ("film.mov", "video"), ("spraak.m4a", "audio"), ("werkstuk.pdf", None),
    ("zonderpunt", None), ("", None),
])
def test_kind_of_filename(name: str, kind: str | None) -> None:
    """A file name's extension names the kind, in any case."""
    assert kind_of_filename(name) == kind


@pytest.mark.parametrize(("content_type", "announced", "kind"), [
    ("image/png", (), "foto"),
    ("application/octet-stream", ("video/mp4",), "video"),
    ("application/json", ("text/plain",), None),
    ("", (), None),
])
def test_upload_from_headers(content_type: str, announced: tuple[str, ...], kind: str | None) -> None:
    """The Content-Type, or a type a resumable upload announces, shows an upload before the body is read."""
    assert upload_from_headers(content_type, announced) == kind


@pytest.mark.parametrize(("content_type", "carries"), [
    ("multipart/form-data; boundary=x", True), ("application/octet-stream", True), ("", True),
    ("application/json", False), ("text/plain", False),
])
def test_carries_files(content_type: str, carries: bool) -> None:
    """Multipart, octet-stream and untyped bodies may carry a file; text and JSON do not."""
    assert carries_files(content_type) is carries


@pytest.mark.parametrize(("content_type", "body", "kind"), [
    ("image/jpeg", b"anything", "foto"),
    (MP, multipart(('Content-Disposition: form-data; name="f"; filename="x.bin"\r\n'
                    "Content-Type: application/octet-stream", JPEG)), "foto"),
    (MP, multipart(('Content-Disposition: form-data; name="f"; filename="x.mp4"\r\nContent-Type: video/mp4',
                    b"...")), "video"),
    (MP, multipart(('Content-Disposition: form-data; name="f"; filename="opname.wav"', b"plain bytes")), "audio"),
    (MP, multipart(('Content-Disposition: form-data; name="t"', b"hallo"),
                   ('Content-Disposition: form-data; name="f"; filename="werk.pdf"', b"%PDF-1.7")), None),
    (MP, multipart(('Content-Disposition: form-data; name="t"', b"hallo")), None),
    ("multipart/form-data", b"no boundary", None),
    ("application/json", b'{"avatar": "data:image/png;base64,iVBORw0KGgo="}', "foto"),
    ("application/octet-stream", JPEG, "foto"),
    ("", b"\x00\x00\x00\x18ftypmp42", "video"),
    ("application/x-www-form-urlencoded", b"a=b", None),
])
def test_upload_in_body(content_type: str, body: bytes, kind: str | None) -> None:
    """Multipart file parts by type, magic bytes or file name; data URLs in text; raw bodies by magic bytes."""
    assert upload_in_body(content_type, body) == kind


def test_upload_in_a_cut_off_multipart_head() -> None:
    """The first bytes of a streamed multipart body are enough: the part headers and the magic bytes."""
    body = multipart(('Content-Disposition: form-data; name="f"; filename="x"', JPEG + b"\x00" * 5000))
    assert upload_in_body(MP, body[:200]) == "foto"
