"""Properties of the outgoing-content functions: any bytes and any text give an answer, never an exception."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from filters.bodies import MAX_TEXT, multipart_parts, text_fields
from filters.decide import Context, Outgoing, decide_outgoing
from filters.hosts import HostLists
from filters.personal import KINDS, elfproef, find_personal
from filters.policy import Policy
from filters.terms import TermList
from filters.uploads import sniff, upload_from_headers, upload_in_body

TYPES = st.one_of(
    st.sampled_from(["", "application/json", "application/x-www-form-urlencoded", "text/plain", "image/png",
                     "multipart/form-data; boundary=XX", "multipart/form-data; boundary=\"\u00e9\ud800\"",
                     "multipart/form-data; boundary=X\r\nX", "application/octet-stream", "text/plain;;;="]),
    st.text(max_size=60))
PIECES = st.sampled_from([b"--XX\r\n", b"--XX--", b"\r\n\r\n", b"Content-Disposition: form-data; name=\"f\"; ",
                          b"filename=\"a.jpg\"", b"Content-Type: image/jpeg", b"\xff\xd8\xff", b"{\"a\": ",
                          b"\"06-12345678\"", b"[", b"]", b"&", b"=", b"%", b"\x00", b"\xff\xfe",
                          b"data:image/png;base64,"])
BODIES = st.one_of(st.binary(max_size=2000), st.lists(st.one_of(PIECES, st.binary(max_size=8))).map(b"".join))


@given(content_type=TYPES, body=BODIES)
def test_bodies_and_uploads_never_raise(content_type: str, body: bytes) -> None:
    """Any Content-Type and any bytes give parts, text fields and an upload kind, never an exception."""
    assert isinstance(multipart_parts(content_type, body), tuple)
    fields = text_fields(content_type, body)
    assert sum(len(v) for _, v in fields) <= MAX_TEXT
    assert upload_in_body(content_type, body) in (None, "foto", "video", "audio")
    assert upload_from_headers(content_type, (content_type,)) in (None, "foto", "video", "audio")
    assert sniff(body) in (None, "foto", "video", "audio")


@given(fields=st.lists(st.tuples(st.text(max_size=10), st.text(max_size=200))))
def test_find_personal_gives_kinds_never_values(fields: list[tuple[str, str]]) -> None:
    """Any text gives a tuple of known kinds, in order: never a piece of the text itself."""
    found = find_personal(fields)
    assert all(k in KINDS for k in found)
    assert list(found) == sorted(found, key=KINDS.index)


@given(digits=st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_elfproef_agrees_with_its_definition(digits: str) -> None:
    """The elfproef holds exactly when the weighted sum is a non-zero multiple of 11."""
    total = sum(int(d) * w for d, w in zip(digits, (9, 8, 7, 6, 5, 4, 3, 2, -1), strict=True))
    assert elfproef(digits) is (total % 11 == 0 and total != 0)


@given(host=st.text(max_size=30), text=st.text(max_size=300),
       upload=st.sampled_from([None, "foto", "video", "audio"]),
       personal=st.lists(st.sampled_from(KINDS), unique=True).map(tuple),
       period=st.sampled_from(["lesson", "break", "outside", "holiday"]))
def test_decide_outgoing_blocks_first(policy: Policy, terms: TermList, hosts: HostLists, host: str, text: str,
                                      upload: str | None, personal: tuple[str, ...], period: str) -> None:
    """Any facts give verdicts with every block before every alert, and alerts flagged as alerts."""
    verdicts = decide_outgoing(Outgoing(host, upload, personal, text), Context(policy, terms, hosts, period))
    actions = [v.action for v in verdicts]
    assert actions == sorted(actions, key=lambda a: a != "block")
    assert all(v.alert == (v.action == "alert") for v in verdicts)
