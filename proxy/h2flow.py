"""HTTP/2 streams with bounded memory: data is acknowledged once it has been passed on (issue 6).

mitmproxy 12 opens a 2 GiB window on every HTTP/2 stream and acknowledges data the moment it arrives. When a
pupil's device stops reading a decrypted stream (a paused video: the browser stops opening its window), the
server's data piles up in the proxy, in the send buffer of that stream, up to 2 GiB. HTTP/1.1 has no such
problem: mitmproxy stops reading every socket while one of its writes is pending (TCP back-pressure).

So the workers run mitmproxy's HTTP/2 layers with two changes, on both sides of the proxy (`install`):

- A stream's window is STREAM_WINDOW instead of 2 GiB, and data received on a stream is acknowledged only as far
  as the other side has sent it on. A paused stream holds at most STREAM_WINDOW in the proxy; the server waits,
  as it would for the device itself. When the device opens its window again, the side that sends tells the side
  that receives (a `Drained` event, routed by mitmproxy's HTTP layer like any other), which acknowledges.
- Where the other side has no window to hold back (an HTTP/1.1 server behind a device that speaks HTTP/2, or the
  other way round), that side's socket is not read while more than STREAM_WINDOW of its stream waits here
  (`hold_back`): TCP holds it back, whether this side's peer has paused or just reads slower than it sends.
  mitmproxy's own back-pressure (it waits for its writes) ends where the device's window does. Should that fail
  (no transport found), a stream with more than STREAM_CAP bytes waiting is reset, as if the device had cancelled
  it. A held-back stream is never reset: what arrived while its server connection opened comes in one piece,
  already in memory, and may be more.

The connection window stays open: a paused stream never stalls the others on its connection. A connection holds
at most 100 streams (hyper-h2's limit) × STREAM_WINDOW: 25 MiB for a device that pauses a hundred videos at once.

Data that is not passed on at once because mitmproxy itself holds it is acknowledged as it arrives, as before:
a request body that a rule reads whole (up to 1 MB, `stream_large_bodies`), and the data a stream receives
while its server connection is being opened (bounded by the time that takes). Holding those back would need an
event when mitmproxy lets go of them, and there is none: a device that has used up its window sends nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import h2.config
import h2.errors
import h2.events
import mitmproxy.proxy.layers.http as http_layers
from mitmproxy import ctx
from mitmproxy.connection import Client, Connection
from mitmproxy.proxy import layer
from mitmproxy.proxy.commands import SendData
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.events import Event
from mitmproxy.proxy.layers.http import HttpLayer, HttpStream, SendHttp
from mitmproxy.proxy.layers.http._base import HttpEvent, ReceiveHttp
from mitmproxy.proxy.layers.http._events import (
    ErrorCode,
    RequestData,
    RequestProtocolError,
    ResponseData,
    ResponseProtocolError,
)
from mitmproxy.proxy.layers.http._http1 import Http1Client, Http1Server
from mitmproxy.proxy.layers.http._http2 import Http2Client, Http2Server, StreamState
from mitmproxy.proxy.layers.http._http_h2 import BufferedH2Connection

# 256 KiB: 100 Mbit/s per stream at a 20 ms round trip to the server. Browsers open 6-15 MiB (they are the end of
# the line); proxies open less (HAProxy 64 KiB, nghttpx 64 KiB), as they hold what their clients do not read.
STREAM_WINDOW = 256 * 1024
STREAM_CAP = 8 * STREAM_WINDOW


@dataclass
class Drained(HttpEvent):
    """To the receiving side of a stream: the sending side has sent on some of the data it held for it."""


class HeldAcks(BufferedH2Connection):
    """mitmproxy's HTTP/2 connection with STREAM_WINDOW per stream, whose acknowledgements wait for `release`."""

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config)
        self.local_settings.initial_window_size = STREAM_WINDOW
        self.local_settings.acknowledge()  # before initiate_connection, which announces the settings
        self.held: dict[int, int] = {}

    def acknowledge_received_data(self, acknowledged_size: int, stream_id: int) -> None:
        # mitmproxy acknowledges as soon as data arrives; the layer releases it once the data has been sent on.
        if acknowledged_size:
            self.held[stream_id] = self.held.get(stream_id, 0) + acknowledged_size

    def release(self, stream_id: int, size: int) -> None:
        left = self.held.get(stream_id, 0) - size
        if left > 0:
            self.held[stream_id] = left
        else:
            self.held.pop(stream_id, None)
        # On a stream that has ended this opens the connection's window only (hyper-h2).
        super().acknowledge_received_data(size, stream_id)

    def buffered(self, stream_id: int) -> int:
        chunks = self.stream_buffers.get(stream_id)
        return sum(len(chunk.data) for chunk in chunks) if chunks else 0


class Bounded:
    """What both sides share. Stream ids in `waiting`, `pending` and `Drained` are the HTTP layer's (the device's)."""

    context: Context
    conn: Connection
    acks: HeldAcks
    """The same object as mitmproxy's `h2_conn`."""
    is_closed: Callable[[int], bool]
    streams: dict[int, StreamState]
    waiting: dict[int, tuple[Connection, int]]
    """Streams the other side holds acknowledgements for: its connection, and what was pending here then."""
    unread: dict[int, asyncio.Transport]
    """This side's streams whose other side speaks HTTP/1.1 and is not read while this side is behind (TCP
    back-pressure): the socket of that side."""

    def http_layer(self) -> HttpLayer | None:
        return next((each for each in reversed(self.context.layers) if isinstance(each, HttpLayer)), None)

    def pending(self, stream: int) -> int:
        """Bytes of the HTTP layer's `stream` that this side has not sent yet."""
        raise NotImplementedError

    def settle(self, local: int, peer: Bounded | None, stream: int | None) -> None:
        """Acknowledge what this side received on `local` as far as the other side (`peer`, its `stream`) sent it on.

        With no HTTP/2 on the other side, or none yet, everything: HTTP/1.1 has TCP back-pressure, and what
        mitmproxy holds itself (a body a rule reads, data while the server connection opens) it bounds itself.
        Holding it here would wait for an event that may never come."""
        held = self.acks.held.get(local)
        if not held:
            return
        waiting = peer.pending(stream) if peer is not None and stream is not None else 0
        if held > waiting:
            self.acks.release(local, held - waiting)
        if waiting and peer is not None and stream is not None:
            peer.waiting[stream] = (self.conn, waiting)

    def released_ended(self) -> None:
        """Acknowledge what is held for streams that have ended here (it opens the connection's window only)."""
        for local in [each for each in self.acks.held if self.is_closed(each)]:
            self.acks.release(local, self.acks.held[local])

    def nudge(self) -> layer.CommandGenerator[None]:
        """Tell the other side about every stream it waits on that has less pending here than before."""
        for stream, (conn, before) in list(self.waiting.items()):
            if self.pending(stream) < before:
                del self.waiting[stream]
                yield SendHttp(Drained(stream), conn)

    def upkeep(self) -> layer.CommandGenerator[None]:
        """After each event: tell the other side what was sent on, read held-back sockets again once caught up,
        and release what is held for streams that ended."""
        if self.waiting:
            yield from self.nudge()
        if self.unread:
            self.let_go()
        if self.acks.held:
            self.released_ended()

    def flush(self) -> layer.CommandGenerator[None]:
        data = self.acks.data_to_send()
        if data:
            yield SendData(self.conn, data)

    def hold_back(self, local: int) -> bool:
        """Stop reading the other side's socket while more than STREAM_WINDOW of `local` waits here, when that side
        speaks HTTP/1.1 (an HTTP/2 side has its window): TCP holds it back. mitmproxy's own back-pressure, waiting
        for its writes, ends where this side's window does: the rest waits in this side's send buffer.

        False when it cannot: an HTTP/1.1 side whose socket was not found."""
        if self.acks.buffered(local) <= STREAM_WINDOW:
            return True
        transport = self.unread.get(local)
        if transport is None:
            other = self.http1_other_side(local)
            if other is None:
                return True  # an HTTP/2 side: the acknowledgements held for it hold it back
            transport = _transport(self.context.client, other)
            if transport is None:
                return False
            self.unread[local] = transport
        transport.pause_reading()  # again each time: asyncio's stream reader may have resumed it meanwhile
        return True

    def http1_other_side(self, local: int) -> Connection | None:
        """The connection on the other side of `local` when it speaks HTTP/1.1."""
        raise NotImplementedError

    def let_go(self, everything: bool = False) -> None:
        """Read the other side's HTTP/1.1 socket again for the streams this side has caught up on (or that ended)."""
        for local, transport in list(self.unread.items()):
            if everything or self.acks.buffered(local) <= STREAM_WINDOW // 2:
                del self.unread[local]
                transport.resume_reading()

    def capped(self, local: int, error: type[RequestProtocolError | ResponseProtocolError]
               ) -> layer.CommandGenerator[None]:
        """Reset the stream `local` (this side's id) when more than STREAM_CAP bytes wait to be sent on it."""
        if self.acks.buffered(local) <= STREAM_CAP:
            return
        self.acks.reset_stream(local, h2.errors.ErrorCodes.CANCEL)
        yield SendData(self.conn, self.acks.data_to_send())
        if self.streams.pop(local, None) is not None:
            message = f"stream reset by the proxy: more than {STREAM_CAP} bytes not read"
            yield ReceiveHttp(error(local, message, code=ErrorCode.CANCEL))


def _transport(client: Client, conn: Connection) -> asyncio.Transport | None:
    """The asyncio transport of `conn` (the device `client` itself, or one of its server connections): from
    mitmproxy's handler of the device's connection (proxyserver's `connections`, its `transports`)."""
    proxyserver = ctx.master.addons.get("proxyserver") if ctx.master is not None else None
    handler = proxyserver.connections.get(client.id) if proxyserver is not None else None
    io = handler.transports.get(conn) if handler is not None else None
    transport = getattr(getattr(io, "writer", None), "transport", None)
    return transport if isinstance(transport, asyncio.Transport) else None


class BoundedHttp2Server(Bounded, Http2Server):
    """The device's side. Its stream ids are the HTTP layer's."""

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.acks = self.h2_conn = HeldAcks(self.h2_conf)
        self.waiting = {}
        self.unread = {}

    def http1_other_side(self, local: int) -> Connection | None:
        top = self.server_layers(local)
        return top.context.server if top is not None and isinstance(top.context.layers[-1], Http1Client) else None

    def close_connection(self, msg: str) -> layer.CommandGenerator[None]:
        self.let_go(everything=True)
        yield from super().close_connection(msg)

    def server_layers(self, stream: int) -> layer.Layer | None:
        """The outermost layer of the server connection of the HTTP layer's `stream`, once it has one."""
        http = self.http_layer()
        handler = http.streams.get(stream) if http is not None else None
        if http is None or not isinstance(handler, HttpStream):
            return None
        return http.connections.get(handler.context.server)

    def server_side(self, stream: int) -> BoundedHttp2Client | None:
        """The server's HTTP/2 layer for the HTTP layer's `stream`, once it has its server connection."""
        top = self.server_layers(stream)
        # The server's layers share one context; its HTTP/2 layer is the innermost (as mitmproxy finds it).
        innermost = top.context.layers[-1] if top is not None else None
        return innermost if isinstance(innermost, BoundedHttp2Client) else None

    def settle_upload(self, stream: int) -> None:
        self.settle(stream, self.server_side(stream), stream)

    def pending(self, stream: int) -> int:
        return self.acks.buffered(stream)

    def _handle_event(self, event: Event) -> layer.CommandGenerator[None]:
        if isinstance(event, Drained):
            self.settle_upload(event.stream_id)
            yield from self.flush()
            return
        yield from super()._handle_event(event)
        if isinstance(event, ResponseData) and not self.hold_back(event.stream_id):
            yield from self.capped(event.stream_id, self.ReceiveProtocolError)
        yield from self.upkeep()

    def handle_h2_event(self, event: h2.events.Event) -> layer.CommandGenerator[bool]:
        stop = yield from super().handle_h2_event(event)
        if isinstance(event, h2.events.DataReceived) and event.stream_id:
            self.settle_upload(event.stream_id)
        return stop


class BoundedHttp2Client(Bounded, Http2Client):
    """The server's side. Its own stream ids ("ours") differ from the HTTP layer's ("theirs"), mitmproxy maps them."""

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.acks = self.h2_conn = HeldAcks(self.h2_conf)
        self.h2_conn.local_settings.enable_push = 0  # as Http2Client sets it on the connection it made
        self.h2_conn.local_settings.acknowledge()
        self.waiting = {}
        self.unread = {}
        self._device_side: BoundedHttp2Server | bool | None = False

    def http1_other_side(self, local: int) -> Connection | None:
        http = self.http_layer()
        device = http.connections.get(self.context.client) if http is not None else None
        return self.context.client if isinstance(device, Http1Server) else None

    def close_connection(self, msg: str) -> layer.CommandGenerator[None]:
        self.let_go(everything=True)
        yield from super().close_connection(msg)

    def device_side(self) -> BoundedHttp2Server | None:
        if self._device_side is False:
            http = self.http_layer()
            handler = http.connections.get(self.context.client) if http is not None else None
            self._device_side = handler if isinstance(handler, BoundedHttp2Server) else None
        assert self._device_side is not True
        return self._device_side or None

    def pending(self, stream: int) -> int:
        ours = self.our_stream_id.get(stream)
        queued = sum(len(each.data) for each in self.stream_queue.get(stream, ()) if isinstance(each, RequestData))
        return queued + (self.acks.buffered(ours) if ours is not None else 0)

    def _handle_event(self, event: Event) -> layer.CommandGenerator[None]:
        if isinstance(event, Drained):
            ours = self.our_stream_id.get(event.stream_id)
            if ours is not None:
                self.settle(ours, self.device_side(), event.stream_id)
                yield from self.flush()
            return
        yield from super()._handle_event(event)
        yield from self.upkeep()

    def _handle_event2(self, event: Event) -> layer.CommandGenerator[None]:
        yield from super()._handle_event2(event)
        # Ours: mitmproxy maps the stream id of what this yields to theirs.
        if isinstance(event, RequestData) and not self.hold_back(event.stream_id):
            yield from self.capped(event.stream_id, self.ReceiveProtocolError)

    def handle_h2_event(self, event: h2.events.Event) -> layer.CommandGenerator[bool]:
        stop = yield from super().handle_h2_event(event)
        if isinstance(event, h2.events.DataReceived) and event.stream_id:
            self.settle(event.stream_id, self.device_side(), self.their_stream_id.get(event.stream_id))
        return stop


def install() -> None:
    """Make mitmproxy's HTTP layer build these HTTP/2 layers (it looks both names up when it makes one)."""
    for name, bounded in (("Http2Server", BoundedHttp2Server), ("Http2Client", BoundedHttp2Client)):
        if not issubclass(bounded, getattr(http_layers, name)):
            raise RuntimeError(f"mitmproxy's {name} has changed: proxy/h2flow.py needs a look")
        setattr(http_layers, name, bounded)
