"""filters.bodies: media types, multipart parts and the text a pupil wrote in an outgoing body."""

from __future__ import annotations

import pytest

from filters.bodies import MAX_TEXT, media_type, multipart_parts, text_fields

MP = "multipart/form-data; boundary=XX"
BODY = (b'--XX\r\nContent-Disposition: form-data; name="msg"\r\n\r\nhallo juf\r\n'
        b'--XX\r\nContent-Disposition: form-data; name="f"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        b"\xff\xd8\xff\r\n--XX--\r\n")


@pytest.mark.parametrize(("header", "kind"), [
    ("Application/JSON; charset=utf-8", "application/json"), ("", ""), ("json", ""), ("a/b c", ""),
])
def test_media_type(header: str, kind: str) -> None:
    """The lower-case type/subtype without parameters; "" for anything unreadable."""
    assert media_type(header) == kind


def test_multipart_parts() -> None:
    """Each part gives its field name, file name, type and payload."""
    parts = multipart_parts(MP, BODY)
    assert [(p.name, p.filename, p.content_type) for p in parts] == [("msg", None, ""), ("f", "a.jpg", "image/jpeg")]
    assert parts[1].payload == b"\xff\xd8\xff"


@pytest.mark.parametrize(("content_type", "body"), [
    ("multipart/form-data", BODY), ("text/plain; boundary=XX", BODY), ("multipart/form-data; boundary=YY", BODY),
])
def test_no_parts_without_a_matching_boundary(content_type: str, body: bytes) -> None:
    """A body without a usable boundary, or not multipart, has no parts."""
    assert multipart_parts(content_type, body) == ()


def test_nested_multipart_parts_are_skipped() -> None:
    """A part that is itself multipart is not a form field."""
    inner = (b'--XX\r\nContent-Type: multipart/mixed; boundary=YY\r\n\r\n--YY\r\n\r\nx\r\n--YY--\r\n'
             b'--XX--\r\n')
    assert multipart_parts(MP, inner) == ()


@pytest.mark.parametrize(("content_type", "body", "fields"), [
    ("application/x-www-form-urlencoded", b"naam=Sanne&tel=06+12345678&leeg=",
     (("naam", "Sanne"), ("tel", "06 12345678"))),
    ("application/json", b'{"a": {"text": "hoi", "n": 5, "l": ["x", null]}}', (("text", "hoi"), ("l", "x"))),
    ("application/ld+json", b'"los"', (("", "los"),)),
    ("application/json", b"{kapot", ()),
    ("application/json", b"[" * 100_000, ()),
    (MP, BODY, (("msg", "hallo juf"),)),
    ("text/plain;charset=UTF-8", b'{"beacon": "data"}', (("beacon", "data"),)),
    ("text/plain", b"[niet json", (("", "[niet json"),)),
    ("", b"gewoon tekst", (("", "gewoon tekst"),)),
    ("application/x-www-form-urlencoded", b"user=sanne&password=06-12345678", (("user", "sanne"),)),
    ("image/png", b"\x89PNG", ()),
])
def test_text_fields(content_type: str, body: bytes, fields: tuple[tuple[str, str], ...]) -> None:
    """Forms, JSON (also sent as text/plain), multipart text fields and plain text; never passwords."""
    assert text_fields(content_type, body) == fields


def test_text_is_bounded() -> None:
    """However long the body, at most MAX_TEXT characters of text are handed on."""
    body = b"&".join(b"f%d=" % i + b"x" * 40_000 for i in range(10))
    fields = text_fields("application/x-www-form-urlencoded", body)
    assert sum(len(v) for _, v in fields) <= MAX_TEXT
    assert len(fields) == 3
