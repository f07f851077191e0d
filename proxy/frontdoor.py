"""The front door: tunnels that no rule looks inside are relayed here, in a lean asyncio relay, not by mitmproxy.

mitmproxy relays a passed-through connection through its whole machinery: client and server objects, a
connection handler with its tasks, layers, and events and commands for every chunk of bytes. That was most
of a worker's CPU on the benchmark's realistic mix (80 % of the connections passed through, bench/README.md).
The front door sits in front of mitmproxy's own protocol, on the same listening socket (proxy/reuseport.py
puts it there), and reads the first request of every new connection:

- `CONNECT name:port` whose choice for this client (`Klaswacht.connect_choice`: the same context and
  `filters.interception` as the hooks) is passthrough: answered `200 Connection established` as mitmproxy
  does; the ClientHello's server name is checked (a name other than the CONNECT's is judged too: passed
  through, refused or, when it would need decrypting, closed; a tunnel that does not start with TLS is handed to
  mitmproxy with its CONNECT replayed, as mitmproxy reads plain HTTP in a tunnel); then the server is connected
  (never the proxy itself) and the bytes are relayed both ways with flow control (asyncio transports: no copy
  in Python beyond the read, no task, no parsing) until either side closes or the connection is idle for
  mitmproxy's `tcp_timeout`.
- Anything else (plain HTTP, a CONNECT to an address or to a host that is decrypted or refused, passthrough
  off, proxy logins, a head that is not HTTP): handed to mitmproxy untouched. Its protocol takes over the
  same transport (`transport.set_protocol`) and gets the bytes read so far: it sees the same client address,
  the same bytes, and decides again as it always did.

In transparent mode (worker.py) there is no CONNECT: the first bytes of a redirected connection are the
ClientHello, judged by its server name; a passed-through one is relayed to the connection's original
destination (SO_ORIGINAL_DST), as mitmproxy would. Nothing has been answered yet, so everything else (plain HTTP
on port 80, no server name, a host that is decrypted or refused, a connection made straight to the proxy's own
address) is handed to mitmproxy. With a parent proxy (`--upstream`) the front door is not used: the tunnel would
have to be asked of the parent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from mitmproxy import platform
from mitmproxy.proxy.layers.tls import parse_client_hello

from filters.hosts import clean_host

if TYPE_CHECKING:
    from proxy.addon import Chosen

log = logging.getLogger(__name__)

# A request head longer than this, or a ClientHello longer than that, is not the front door's to judge.
MAX_HEAD = 16 * 1024
MAX_HELLO = 64 * 1024
# Bytes from the client held while the server is connected; reading pauses above it.
MAX_PENDING = 256 * 1024
CONNECT_TIMEOUT = 20.0
_CONNECT_LINE = re.compile(rb"CONNECT ([A-Za-z0-9._-]{1,253}):([0-9]{1,5}) (HTTP/1\.[01])\r\n")
_PREFIX = b"CONNECT "
# The end of a request's head as mitmproxy's parser (h11's) finds it: after bare line feeds too.
_BLANK_LINE = re.compile(rb"\n\r?\n")
_TLS_HANDSHAKE = 0x16


class Choice(Protocol):
    """What the front door needs of the Klaswacht addon (proxy/addon.py)."""

    def connect_choice(self, host: str, address: str) -> Chosen | None: ...

    def refused(self, chosen: Chosen) -> None: ...

    def passed_through(self, host: str) -> None: ...


class FrontDoor:
    """One per worker: the choice, mitmproxy's idle timeout, and the counts of the tunnels relayed here."""

    def __init__(self, choice: Choice, count: Callable[[], None], idle_timeout: Callable[[], float],
                 blocked: Callable[[str], bool], transparent: bool = False,
                 ended: Callable[[], None] = lambda: None, protected: frozenset[int] = frozenset()) -> None:
        self.choice = choice
        # Ports of the gateway's own services (dashboard, metrics, a local database): never reached through a tunnel.
        self.protected = protected
        # Clients mitmproxy's `block` addon refuses (block_global, block_private): handed to mitmproxy, which
        # refuses them, so that the front door is never an open relay for the internet.
        self.blocked = blocked
        self.count = count  # a tunnel relayed here
        # A connection the front door ended itself, neither relayed nor handed to mitmproxy (which counts its own):
        # an idle or broken first request, a closed tunnel. Counted as accepted all the same.
        self.ended = ended
        self.idle_timeout = idle_timeout  # mitmproxy's tcp_timeout, read when a tunnel starts
        self.transparent = transparent
        self.open: set[Doorway] = set()  # the tunnels being relayed

    def wrap(self, inner: Callable[[], asyncio.BaseProtocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for the listening socket: the front door first, mitmproxy's protocol behind it."""
        return lambda: Doorway(self, inner)


class Doorway(asyncio.Protocol):
    """One client connection: reading its first request, then either handed to mitmproxy or relayed."""

    def __init__(self, door: FrontDoor, inner: Callable[[], asyncio.BaseProtocol]) -> None:
        self.door = door
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.address = ""
        self.buffer = bytearray()
        self.head = b""  # a CONNECT the front door answered itself, replayed if mitmproxy gets the tunnel after all
        self.answer = b""  # and that answer
        self.state = "head"  # head, hello, connecting, relay, closed
        self.host = ""  # the name judged: the CONNECT's, or the server name in transparent mode
        self.target: tuple[str, int] = ("", 0)  # where the relay connects
        self.upstream: Upstream | None = None
        self.idle: asyncio.TimerHandle | None = None
        self.last = 0.0  # loop time of the last bytes either way
        self.paused = False
        self.eof = False
        self.counted = False  # as relayed, or by mitmproxy

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]).removeprefix("::ffff:") if peer else ""
        if self.door.blocked(self.address):
            self._hand_over()
            return
        if self.door.transparent:
            self.state = "hello"
            try:
                assert platform.original_addr is not None
                original = platform.original_addr(transport.get_extra_info("socket"))
            except Exception:  # mitmproxy's own handler reports it
                self._hand_over()
                return
            if tuple(original[:2]) == tuple(transport.get_extra_info("sockname")[:2]):
                self._hand_over()  # made straight to the proxy: its guard (proxy/direct.py) answers that
                return
            self.target = (str(original[0]), int(original[1]))
        # mitmproxy's tcp_timeout from the start, as its own watchdog does: a client that never sends its request
        # does not hold a connection for ever.
        self.last = asyncio.get_running_loop().time()
        self._arm_idle(self.door.idle_timeout())

    def data_received(self, data: bytes) -> None:
        if self.state == "relay":
            assert self.upstream is not None and self.upstream.transport is not None
            self.last = asyncio.get_running_loop().time()
            self.upstream.transport.write(data)
            return
        self.buffer += data
        self.last = asyncio.get_running_loop().time()
        if self.state == "head":
            self._read_head()
        elif self.state == "hello":
            self._read_hello()
        elif self.state == "connecting" and len(self.buffer) > MAX_PENDING:
            self._pause_reading(True)

    def eof_received(self) -> bool:
        self.eof = True
        if self.state == "connecting":
            return True  # passed on once the server is connected
        upstream = self.upstream
        if self.state != "relay" or upstream is None or upstream.transport is None or upstream.eof:
            self.close()  # before the relay, or both sides are done
            return False
        upstream.transport.write_eof()
        return True  # the server may still answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def pause_writing(self) -> None:  # the client reads slower than the server sends
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    # --- the first request

    def _read_head(self) -> None:
        buffer = self.buffer
        if not buffer.startswith(_PREFIX[:len(buffer)]):
            self._hand_over()
            return
        blank = _BLANK_LINE.search(buffer)
        if blank is None:
            if len(buffer) > MAX_HEAD:
                self._hand_over()
            return
        line = _CONNECT_LINE.match(buffer)
        if line is None or _is_address(line[1].decode()):
            self._hand_over()
            return
        host, port, version = line[1].decode().lower(), int(line[2]), line[3]
        chosen = self._choice(host) if 0 < port < 65536 else None
        if chosen is None or chosen.interception.choice != "passthrough":
            self._hand_over()
            return
        self.host, self.target = host, (host, port)
        self.head, self.answer = bytes(buffer[:blank.end()]), version + b" 200 Connection established\r\n\r\n"
        del buffer[:blank.end()]
        assert self.transport is not None
        self.transport.write(self.answer)
        self.state = "hello"
        if buffer:
            self._read_hello()

    def _read_hello(self) -> None:
        """The tunnel's first bytes: a TLS ClientHello is judged by its server name. Anything else goes to
        mitmproxy, which reads plain HTTP in a tunnel and judges each request by its Host header: relayed, a
        request for any host could be sent to a passed-through host's server (a CDN serves them all)."""
        buffer = self.buffer
        transparent = self.door.transparent
        if buffer[0] != _TLS_HANDSHAKE:
            self._hand_over()
            return
        try:
            hello = parse_client_hello(bytes(buffer))
        except ValueError:
            self._unreadable()
            return
        if hello is None:
            if len(buffer) > MAX_HELLO:
                self._unreadable()
            return
        name = clean_host(hello.sni or "")
        if transparent:
            chosen = self._choice(name) if name and not _is_address(name) else None
            if chosen is None or chosen.interception.choice != "passthrough":
                self._hand_over()
                return
            self.host = name
        elif name and name != self.host:
            chosen = self._choice(name)
            if chosen is None or chosen.interception.choice != "passthrough":
                # A tunnel to one host whose handshake names another that must be decrypted or refused:
                # no browser does this, and the CONNECT has been answered already: closed.
                if chosen is not None and chosen.interception.choice == "refuse":
                    self.door.choice.refused(chosen)
                log.debug("a tunnel whose server name is not its CONNECT's was closed")
                self.close()
                return
            self.host = name  # noted for the dry run, as mitmproxy's hook notes the server name it judged
        self._relay()

    def _unreadable(self) -> None:
        """A handshake that cannot be read: mitmproxy's TLS layer reports it; a tunnel already answered is closed."""
        if self.door.transparent:
            self._hand_over()
        else:
            self.close()

    def _relay(self) -> None:
        self.door.choice.passed_through(self.host)
        self.door.count()
        self.counted = True
        self.state = "connecting"
        asyncio.get_running_loop().create_task(self._connect(), name="klaswacht-frontdoor-connect")

    def _choice(self, host: str) -> Chosen | None:
        try:
            return self.door.choice.connect_choice(host, self.address)
        except Exception:  # never the end of a pupil's connection: mitmproxy gets it, and decides again
            log.exception("the front door could not work out a choice")
            return None

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        upstream = Upstream(self)
        try:
            # No happy_eyeballs_delay: Python 3.12.1's staggered_race can fail an assertion; mitmproxy does not
            # use it either.
            await asyncio.wait_for(loop.create_connection(lambda: upstream, *self.target), CONNECT_TIMEOUT)
        except (OSError, TimeoutError, UnicodeError) as e:
            log.debug("a passed-through server could not be reached: %s", type(e).__name__)
            self.close()
            return
        except Exception:  # the pupil's connection is closed, never left hanging
            log.exception("a passed-through server could not be reached")
            self.close()
            return
        if self.state == "closed":
            upstream.close()
            return
        assert upstream.transport is not None and self.transport is not None
        if _is_self(upstream.transport, self.transport, self.door.protected):
            # A tunnel to the proxy's own port (localhost, its address, or any name that resolves to it): relayed,
            # the pupil's requests would come back from the proxy's own address and be judged as its, not the
            # pupil's, and nested CONNECTs would multiply connections. mitmproxy refuses these too (proxyserver).
            log.debug("a tunnel to the proxy itself was closed")
            upstream.close()
            self.close()
            return
        self.upstream = upstream
        self.state = "relay"
        self.door.open.add(self)
        if self.buffer:
            upstream.transport.write(bytes(self.buffer))
            self.buffer.clear()
        if self.eof:
            upstream.transport.write_eof()
        # Reading resumes unless that first write filled the server's buffer already: its pause_writing came
        # before this, and asyncio says it only once.
        self._pause_reading(upstream.full)
        self.last = loop.time()

    # --- mitmproxy's turn

    def _hand_over(self) -> None:
        """mitmproxy's protocol takes over the transport, with every byte read so far (and a CONNECT that the front
        door answered, replayed: mitmproxy's own answer to it is dropped, see `Answered`)."""
        assert self.transport is not None
        protocol = self.inner()
        assert isinstance(protocol, asyncio.Protocol)
        transport, self.transport = self.transport, None
        self.state = "closed"
        self.counted = True  # mitmproxy's client_connected counts it
        if self.idle is not None:  # mitmproxy's own watchdog from here on
            self.idle.cancel()
            self.idle = None
        transport.set_protocol(protocol)
        protocol.connection_made(cast(asyncio.Transport, Answered(transport, self.answer)) if self.head else transport)
        data = self.head + self.buffer
        if data:
            protocol.data_received(bytes(data))
        self.buffer = bytearray()

    # --- the relay

    def _pause_reading(self, pause: bool) -> None:
        if self.transport is None or pause == self.paused:
            return
        self.paused = pause
        if pause:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def _arm_idle(self, timeout: float) -> None:
        if timeout <= 0:
            return
        self.idle = asyncio.get_running_loop().call_later(timeout, self._check_idle, timeout)

    def _check_idle(self, timeout: float) -> None:
        idle_for = asyncio.get_running_loop().time() - self.last
        if idle_for >= timeout:
            self.close()
            return
        self.idle = asyncio.get_running_loop().call_later(timeout - idle_for, self._check_idle, timeout)

    def close(self) -> None:
        if self.state == "closed" and self.transport is None:
            return
        self.state = "closed"
        self.door.open.discard(self)
        if not self.counted:
            self.counted = True
            self.door.ended()
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        self.buffer = bytearray()


class Answered:
    """The client's transport as mitmproxy's protocol sees it after the front door answered the CONNECT itself:
    mitmproxy's answer to the replayed CONNECT is dropped (the client has one already). Any other answer (a
    refusal: the policy was reloaded in between) can no longer be given: the connection is closed."""

    def __init__(self, transport: asyncio.Transport, answer: bytes) -> None:
        self.transport = transport
        self.answer = answer  # still to come from mitmproxy, and to be dropped
        self.refused = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.refused:
            return
        if self.answer:
            data = bytes(data)
            size = min(len(data), len(self.answer))
            if data[:size] != self.answer[:size]:
                log.debug("mitmproxy answered a CONNECT otherwise than the front door did: closed")
                self.refused = True
                self.transport.close()
                return
            self.answer, data = self.answer[size:], data[size:]
            if not data:
                return
        self.transport.write(data)

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's own
        return getattr(self.transport, name)


class Upstream(asyncio.Protocol):
    """The server side of a relayed tunnel."""

    def __init__(self, client: Doorway) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.eof = False
        self.full = False  # its write buffer is above the high-water mark: the client is not read

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        client = self.client.transport
        if client is None:
            return
        self.client.last = asyncio.get_running_loop().time()
        client.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        client = self.client.transport
        if client is None or self.client.eof or not client.can_write_eof():
            self.client.close()  # both sides are done
            return False
        client.write_eof()
        return True  # the client may still send

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.client.close()

    def pause_writing(self) -> None:  # the server reads slower than the client sends
        self.full = True
        self.client._pause_reading(True)

    def resume_writing(self) -> None:
        self.full = False
        self.client._pause_reading(False)

    def close(self) -> None:
        if self.transport is not None:
            transport, self.transport = self.transport, None
            transport.close()


def blocked_client(address: str, block_global: bool, block_private: bool) -> bool:
    """Whether mitmproxy's `block` addon refuses a client from `address` under these options (loopback never)."""
    try:
        ip = ipaddress.ip_address(address.rsplit("%", 1)[0])
    except ValueError:
        return True  # no address to judge: mitmproxy's turn
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip.ipv4_mapped or ip
    if ip.is_loopback:
        return False
    return (block_private and ip.is_private) or (block_global and ip.is_global)


def _is_self(upstream: asyncio.BaseTransport, client: asyncio.BaseTransport,
             protected: frozenset[int] = frozenset()) -> bool:
    """Whether the relay's server connection reached this proxy or one of the gateway's own services: the port the
    client came in on or a `protected` one, at a loopback address or at the connection's own address (Linux
    reaches a local address from that same address)."""
    peer, own = upstream.get_extra_info("peername"), upstream.get_extra_info("sockname")
    listening = client.get_extra_info("sockname")
    if not peer or not own or not listening or (peer[1] != listening[1] and peer[1] not in protected):
        return False
    ip = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip.ipv4_mapped or ip
    return ip.is_loopback or peer[0] == own[0] or peer[0] == listening[0]


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
