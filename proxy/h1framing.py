"""Requests from an HTTP/2 device keep their body when the server speaks HTTP/1.1.

HTTP/2 frames a body itself, so a browser may leave out `content-length` (Chrome and Safari do for some uploads).
mitmproxy 12 turns such a request into HTTP/1.1 without any framing: the server reads a body of length 0, and the
body that follows looks like the next request to it (the upload is lost, or the connection fails). The workers
frame it, as HTTP/2-to-1 gateways do (h2o, netty, nghttpx):

- a body mitmproxy holds whole (up to 1 MB, a rule reads it) is sent with its `content-length`;
- a body streamed on (larger, or of unknown length) is sent chunked (`transfer-encoding: chunked`);
- a POST, PUT or PATCH without a body gets `content-length: 0`, as servers may otherwise answer 411.

Only the copy of the request written to the server changes: addons and the event log see the device's request.
"""

from __future__ import annotations

import mitmproxy.proxy.layers.http as http_layers
from mitmproxy import http
from mitmproxy.proxy import layer
from mitmproxy.proxy.layers.http._base import HttpEvent
from mitmproxy.proxy.layers.http._events import RequestHeaders
from mitmproxy.proxy.layers.http._http1 import Http1Client

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def framed(request: http.Request, end_stream: bool) -> http.Request:
    """`request` (from HTTP/2 or 3) as an HTTP/1.1 server can tell where its body ends."""
    headers = request.headers
    if not (request.is_http2 or request.is_http3) or "content-length" in headers or "transfer-encoding" in headers:
        return request
    if end_stream:
        if request.method.upper() not in BODY_METHODS:
            return request
        length: int | None = 0
    else:
        # mitmproxy sets `raw_content` when it held the body whole; a streamed body has none yet.
        length = len(request.raw_content) if request.raw_content is not None and not request.trailers else None
    copy = request.copy()
    if length is None:
        copy.headers["transfer-encoding"] = "chunked"
    else:
        copy.headers["content-length"] = str(length)
    return copy


class FramedHttp1Client(Http1Client):
    """mitmproxy's HTTP/1.1 server side, sending requests from HTTP/2 devices with framing (`framed`)."""

    def send(self, event: HttpEvent) -> layer.CommandGenerator[None]:
        if isinstance(event, RequestHeaders) and self.stream_id is None:
            # The layer keeps the request of its first RequestHeaders and frames the body by its headers.
            event = RequestHeaders(event.stream_id, framed(event.request, event.end_stream), event.end_stream,
                                   event.replay_flow)
        yield from super().send(event)


def install() -> None:
    """Make mitmproxy's HTTP layer build FramedHttp1Client (it looks the name up when it makes one)."""
    name = "Http1Client"  # not exported by the package: looked up by name, as h2flow does
    if not issubclass(FramedHttp1Client, getattr(http_layers, name)):
        raise RuntimeError(f"mitmproxy's {name} has changed: proxy/h1framing.py needs a look")
    setattr(http_layers, name, FramedHttp1Client)
