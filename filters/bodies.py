"""What an outgoing request body holds: its media type, its multipart parts, and the text a pupil wrote.

Pure and lenient: any bytes give an answer, never an exception. The stdlib parses what it can (the
`email` package for media types and multipart bodies, `json`, `urllib.parse` for forms); this module
only walks the result. The caller bounds the body (the proxy reads at most 1 MB); the text handed
on is bounded again by MAX_TEXT.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from urllib.parse import parse_qsl

# At most this many characters of written text are scanned per body: messages are short, and the
# matchers stay fast on a body that is long.
MAX_TEXT = 100_000
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
# Fields whose values are never scanned: a password is no message, and no personal data to report.
SECRET_FIELDS = frozenset({"password", "passwd", "pass", "pwd", "wachtwoord", "current-password", "new-password"})


_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")


def media_type(header: str) -> str:
    """The lower-case media type of a Content-Type header: "image/jpeg"; "" when absent or unreadable."""
    kind = header.partition(";")[0].strip().lower()
    return kind if _MEDIA_TYPE.fullmatch(kind) else ""


def _boundary(header: str) -> str | None:
    message = Message()
    # The email package reads ASCII headers only (a header is latin-1 at most): anything else is a "?".
    message["Content-Type"] = header.encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ")
    boundary = message.get_param("boundary")
    return boundary if isinstance(boundary, str) and boundary else None


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a multipart/form-data body."""

    name: str  # the form field name
    filename: str | None  # set for a file part
    content_type: str  # "" when the part has none
    payload: bytes


def multipart_parts(content_type: str, body: bytes) -> tuple[Part, ...]:
    """The parts of a multipart body (empty when it is none, or has no boundary)."""
    boundary = _boundary(content_type) if media_type(content_type).startswith("multipart/") else None
    if boundary is None:
        return ()
    boundary = boundary.replace('"', "").replace("\\", "")
    head = f'Content-Type: multipart/form-data; boundary="{boundary}"\r\n\r\n'
    message = BytesParser().parsebytes(head.encode("utf-8", "replace") + body)
    payload = message.get_payload()
    if not isinstance(payload, list):
        return ()
    parts = []
    for part in payload:
        if not isinstance(part, Message) or part.is_multipart():
            continue
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        has_type = part.get("content-type") is not None
        parts.append(Part(str(name) if isinstance(name, str) else "", part.get_filename(),
                          part.get_content_type() if has_type else "",
                          data if isinstance(data, bytes) else b""))
    return tuple(parts)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _json_strings(data: object) -> list[tuple[str, str]]:
    """(key, string value) of every string in a JSON document, depth first, without recursion."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[str, object]] = [("", data)]
    while stack:
        key, value = stack.pop()
        if isinstance(value, str):
            found.append((key, value))
        elif isinstance(value, dict):
            stack.extend(reversed([(str(k), v) for k, v in value.items()]))
        elif isinstance(value, list):
            stack.extend(reversed([(key, v) for v in value]))
    return found


def _json_fields(text: str) -> list[tuple[str, str]] | None:
    try:
        return _json_strings(json.loads(text))
    except (ValueError, RecursionError):
        return None


def text_fields(content_type: str, body: bytes) -> tuple[tuple[str, str], ...]:
    """(field name, text) of what a pupil wrote in a form post, a JSON body, a multipart form or plain text.

    Names are kept so that a rule can tell a recipient field from a message; password fields are
    left out; the text of all fields together is cut at MAX_TEXT characters.
    """
    kind = media_type(content_type)
    fields: list[tuple[str, str]] = []
    if kind == FORM:
        fields = parse_qsl(_decode(body), keep_blank_values=False)
    elif kind == "application/json" or kind.endswith("+json"):
        fields = _json_fields(_decode(body)) or []
    elif kind.startswith("multipart/"):
        fields = [(p.name, _decode(p.payload)) for p in multipart_parts(content_type, body)
                  if p.filename is None and p.content_type in ("", "text/plain")]
    elif kind in ("text/plain", ""):
        text = _decode(body)
        stripped = text.lstrip()
        parsed = _json_fields(text) if stripped[:1] in ("{", "[") else None  # beacons send JSON as text/plain
        fields = parsed if parsed is not None else [("", text)]
    out: list[tuple[str, str]] = []
    budget = MAX_TEXT
    for name, value in fields:
        if budget <= 0:
            break
        if name.lower() in SECRET_FIELDS or not value.strip():
            continue
        out.append((name, value[:budget]))
        budget -= len(value)
    return tuple(out)
