"""What pupils send: photo, video and sound uploads, personal information, threats and abuse (issue 4, 6-8).

Runs after the Klaswacht addon, on requests it let through, and only for POST, PUT and PATCH to hosts
outside the school allow list (`filters.decide.reads_outgoing`). It decides in three places, each
bounded:

- `requestheaders`: an image/, video/ or audio/ Content-Type (or a type a resumable upload announces)
  is blocked before a byte of the body is read: the 403 block page, the host is never contacted.
- `request`: a body the proxy holds whole (mitmproxy buffers bodies up to `stream_large_bodies`, 1 MB)
  is read for multipart file parts, magic bytes, personal information and threats; a block is the
  403 block page, answered before the server connection is made (connection_strategy lazy).
- a streamed body (larger than 1 MB, or of no known length: chunked, or HTTP/2 without content-length) of a
  type that may carry a file: a stream filter
  holds back at most the first SNIFF_HEAD bytes, and sniffs them. Nothing of an upload leaves: from
  then on the body is replaced by zero bytes of the same length (chunked: cut off), so the framing
  the host was promised stays correct, and the host's answer is replaced by the block page. The host
  has seen the request headers by then: streaming starts with them, mitmproxy cannot hold them back.
  Personal information and threats are not looked for in a streamed body (no message is 1 MB).

Response bodies are never read: they are streamed (`responseheaders`).

Events: blocks and alerts go to the store with the pupil's pseudonymous id and a severity ("severe"
for threats, sexting and self-harm: care staff too); the terms are wordlist entries and kinds
("telefoonnummer", "foto"), never the message or the personal data itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mitmproxy import http

from filters.bodies import text_fields
from filters.decide import OUTGOING_METHODS, Context, Outgoing, Verdict, decide_outgoing, reads_outgoing, severity
from filters.personal import find_personal
from filters.uploads import carries_files, upload_from_headers, upload_in_body
from klaswacht.store import Event
from proxy.addon import Identity, Klaswacht
from proxy.blockpage import block_page

log = logging.getLogger(__name__)

# Headers in which resumable and chunked upload protocols name the media type of the whole file.
ANNOUNCING_HEADERS = ("X-Upload-Content-Type", "X-Goog-Upload-Header-Content-Type", "X-File-Type",
                      "X-Content-Type")
# How much of a streamed body is held back to sniff it: enough for multipart part headers and magic bytes.
SNIFF_HEAD = 64 * 1024
_IDENTITY, _VERDICT = "klaswacht_identity", "klaswacht_verdict"
_BLANKED = "klaswacht_outgoing_blocked"  # the verdict that replaced a streamed body: answered in `response`


def _blocked(verdict: Verdict) -> http.Response:
    return http.Response.make(403, block_page(verdict), {
        "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})


class _HeadSniffer:
    """A stream filter: holds back the first bytes of a body, asks `judge` about them once, then either
    lets the body through unchanged or replaces it with zeros (cut off when `chunked`: no length was promised).

    It answers with a list of chunks, empty while it holds back: mitmproxy writes an empty chunk `b""` to an
    HTTP/1.1 server as `0\r\n\r\n`, the end of a chunked body, so the server saw the body end at once (and
    answered before the upload was judged) and took the rest for a new request."""

    def __init__(self, judge: Callable[[bytes], bool], chunked: bool) -> None:
        self.judge = judge
        self.chunked = chunked
        self.head = bytearray()
        self.blocked: bool | None = None  # None: not judged yet

    def __call__(self, chunk: bytes) -> list[bytes]:
        if self.blocked is None:
            self.head += chunk
            if len(self.head) < SNIFF_HEAD and chunk:
                return []
            chunk, self.head = bytes(self.head), bytearray()
            self.blocked = self.judge(chunk)
        if self.blocked and self.chunked:
            return []
        if self.blocked:
            chunk = bytes(len(chunk))
        return [chunk] if chunk else []


class OutgoingContent:
    """Blocks or alerts on what a pupil sends; decides with filters/, reaches the store through Klaswacht."""

    def __init__(self, klaswacht: Klaswacht) -> None:
        self.klaswacht = klaswacht

    def _context(self, identity: Identity) -> Context | None:
        k = self.klaswacht
        if k.policy is None or k.lists is None:
            return None
        # A ban or a closed category was decided by Klaswacht already; grants do not open uploads.
        return Context(k.policy, k.lists.terms, k.lists.hosts, identity.period)

    def _scope(self, flow: http.HTTPFlow) -> tuple[Identity, Context] | None:
        """Who sent this request and the context, when an outgoing rule needs to look at it."""
        method = flow.request.method
        if method.upper() not in OUTGOING_METHODS:
            return None  # no outgoing rule reads a GET: skipped before the Host header is parsed or a context made
        identity = flow.metadata.get(_IDENTITY)
        verdict = flow.metadata.get(_VERDICT)
        if not isinstance(identity, Identity) or not isinstance(verdict, Verdict) or verdict.action == "block":
            return None
        context = self._context(identity)
        if context is None or not reads_outgoing(method, flow.request.pretty_host, context):
            return None
        return identity, context

    # --- the hooks

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        scope = self._scope(flow)
        if scope is None:
            return
        with self.klaswacht.metrics.deciding(flow.metadata):
            identity, context = scope
            headers = flow.request.headers
            content_type = headers.get("Content-Type", "")
            announced = tuple(headers[h] for h in ANNOUNCING_HEADERS if h in headers)
            kind = upload_from_headers(content_type, announced)
            if kind is not None and self._act(flow, identity, context, Outgoing(flow.request.pretty_host, kind)):
                return
            # No length known (chunked HTTP/1.1, HTTP/2 without content-length): mitmproxy would hold the body up
            # to stream_large_bodies and then stream the rest on, past this hook and unread; so it is sniffed from
            # the start, as one with a length over the limit is.
            unknown = "chunked" in headers.get("Transfer-Encoding", "").lower() or "content-length" not in headers
            if (flow.request.stream or unknown) and carries_files(content_type):
                flow.request.stream = _HeadSniffer(lambda head: self._judge_head(flow, head), unknown)

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or flow.request.stream:
            return
        scope = self._scope(flow)
        if scope is None:
            return
        with self.klaswacht.metrics.deciding(flow.metadata):
            identity, context = scope
            body = flow.request.get_content(strict=False) or b""
            if not body:
                return
            content_type = flow.request.headers.get("Content-Type", "")
            fields = text_fields(content_type, body)
            facts = Outgoing(flow.request.pretty_host, upload_in_body(content_type, body), find_personal(fields),
                             "\n".join(text for _, text in fields))
            self._act(flow, identity, context, facts)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # No rule reads a response body: every answer is streamed to the pupil as it comes (no buffering of up to
        # stream_large_bodies per response), except the answer to an upload blanked on its way, which `response`
        # replaces with the block page (a streamed answer would have reached the pupil before that hook).
        if flow.response is not None and not isinstance(flow.metadata.get(_BLANKED), Verdict):
            flow.response.stream = True

    def response(self, flow: http.HTTPFlow) -> None:
        verdict = flow.metadata.get(_BLANKED)
        if isinstance(verdict, Verdict):
            # The upload was replaced by zeros on its way: the pupil sees why, not the host's answer.
            flow.response = _blocked(verdict)

    # --- the work

    def _judge_head(self, flow: http.HTTPFlow, head: bytes) -> bool:
        """Whether the first bytes of a streamed body are an upload that a rule blocks (then recorded)."""
        scope = self._scope(flow)
        if scope is None:
            return False
        identity, context = scope
        kind = upload_in_body(flow.request.headers.get("Content-Type", ""), head)
        if kind is None:
            return False
        verdicts = decide_outgoing(Outgoing(flow.request.pretty_host, kind), context)
        self._record(flow, identity, verdicts)
        if verdicts and verdicts[0].action == "block":
            flow.metadata[_BLANKED] = verdicts[0]
            return True
        return False

    def _act(self, flow: http.HTTPFlow, identity: Identity, context: Context, facts: Outgoing) -> bool:
        """Decide, record, and answer with the block page when a rule blocks: True when it did."""
        verdicts = decide_outgoing(facts, context)
        self._record(flow, identity, verdicts)
        if verdicts and verdicts[0].action == "block":
            flow.metadata[_VERDICT] = verdicts[0]
            flow.response = _blocked(verdicts[0])
            return True
        return False

    def _record(self, flow: http.HTTPFlow, identity: Identity, verdicts: tuple[Verdict, ...]) -> None:
        k = self.klaswacht
        for verdict in verdicts:
            k.metrics.verdict(verdict.action, verdict.rule, verdict.category)
            if k.store is None:
                continue
            client = identity.pupil or k.store.client_for(identity.address)
            k.store.record(Event(verdict.action, verdict.rule, verdict.category, flow.request.pretty_host,
                                 verdict.terms, client, identity.group, severity(verdict)))
