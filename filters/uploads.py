"""Is an outgoing request a photo, video or sound upload? From its headers, its multipart parts, its bytes.

Two stages, because a large body is streamed by the proxy and never held whole:
- `upload_from_headers`: the Content-Type (or the type a resumable upload announces) says image,
  video or audio: decided before a byte of the body is read.
- `upload_in_body`: a whole body (at most what the proxy holds), or the first bytes of a streamed
  one when `carries_files` says its type may hold a file: multipart file parts by their type, file
  name or first bytes; a raw body by its magic bytes; a `data:image/...;base64,` URL in text.
  A cut-off multipart head is read as far as it goes.

The kinds are named the way a teacher reads them: "foto", "video", "audio".
"""

from __future__ import annotations

import re

from filters.bodies import media_type, multipart_parts

IMAGE, VIDEO, AUDIO = "foto", "video", "audio"
_KINDS = {"image": IMAGE, "video": VIDEO, "audio": AUDIO}
# Bodies of these types can carry a file of any kind; "" is a body without a Content-Type.
FILE_CARRIERS = frozenset({"", "application/octet-stream", "binary/octet-stream", "multipart/form-data",
                           "multipart/mixed", "multipart/related"})

_EXTENSIONS = {
    IMAGE: ("jpg", "jpeg", "jfif", "png", "gif", "webp", "heic", "heif", "avif", "bmp", "tif", "tiff", "svg"),
    VIDEO: ("mp4", "m4v", "mov", "qt", "avi", "webm", "mkv", "3gp", "3g2", "mpeg", "mpg", "wmv", "flv"),
    AUDIO: ("mp3", "m4a", "aac", "wav", "ogg", "oga", "opus", "flac", "amr", "wma", "weba"),
}
_BY_EXTENSION = {ext: kind for kind, exts in _EXTENSIONS.items() for ext in exts}
# ISO base media (ftyp) brands that are still images or sound; every other brand is a video.
_IMAGE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis")
_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B ")
_DATA_URL = re.compile(rb"data:(image|video|audio)/[a-z0-9.+-]+;base64,", re.IGNORECASE)
SNIFF_BYTES = 64  # how many first bytes the magic numbers need


def kind_of_type(content_type: str) -> str | None:
    """"foto", "video" or "audio" for an image/, video/ or audio/ media type; None otherwise."""
    return _KINDS.get(media_type(content_type).partition("/")[0])


def kind_of_filename(filename: str) -> str | None:
    """The kind that a file name's extension says: "IMG_0042.HEIC" -> "foto"."""
    return _BY_EXTENSION.get(filename.rpartition(".")[2].strip().lower()) if "." in filename else None


def sniff(data: bytes) -> str | None:
    """The kind that the first bytes of a file say (magic numbers); None for anything else."""
    head = data[:SNIFF_BYTES]
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")):
        return IMAGE
    if head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        return {b"WEBP": IMAGE, b"WAVE": AUDIO}.get(head[8:12], VIDEO)
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return IMAGE if brand in _IMAGE_BRANDS else AUDIO if brand in _AUDIO_BRANDS else VIDEO
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # Matroska and WebM
        return VIDEO
    if head.startswith((b"OggS", b"ID3", b"fLaC", b"#!AMR")):
        return AUDIO
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF0 == 0xF0:  # MPEG audio and AAC frame sync
        return AUDIO
    return None


def upload_from_headers(content_type: str, announced: tuple[str, ...] = ()) -> str | None:
    """The kind of upload that the headers alone show: an image/, video/ or audio/ Content-Type, or such a
    type announced by a resumable upload in its own headers (X-Upload-Content-Type and the like)."""
    for header in (content_type, *announced):
        kind = kind_of_type(header)
        if kind is not None:
            return kind
    return None


def carries_files(content_type: str) -> bool:
    """Whether a body of this type may hold a file whose kind only its bytes tell (multipart, octet-stream, none)."""
    return media_type(content_type) in FILE_CARRIERS


def upload_in_body(content_type: str, body: bytes) -> str | None:
    """The kind of photo, video or sound that a body (whole, or its first bytes) carries, or None."""
    kind = kind_of_type(content_type)
    if kind is not None:
        return kind
    parts = multipart_parts(content_type, body)
    for part in parts:
        found = kind_of_type(part.content_type) or sniff(part.payload)
        if found is None and part.filename:
            found = kind_of_filename(part.filename)
        if found is not None:
            return found
    if parts:
        return None
    url = _DATA_URL.search(body)
    if url is not None:
        return _KINDS[url.group(1).decode().lower()]
    return sniff(body)
