"""The front door's relay (proxy/frontdoor.py), in one event loop with real loopback sockets.

The addon's side is a small table of choices per host (the front door asks `connect_choice`; the real one
is tested through `klaswacht run` in test_frontdoor.py); mitmproxy's side is a protocol that keeps what it
is handed. Each test drives a real client socket through the front door to a real server socket.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest
from proxy_helpers import client_hello

from filters.interception import Interception
from proxy import frontdoor
from proxy.addon import Chosen
from proxy.frontdoor import MAX_HEAD, FrontDoor, blocked_client

Client = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Choices:
    """The addon's answers: a choice per host name (anything else: decrypt)."""

    def __init__(self, table: dict[str, str], fail: bool = False) -> None:
        self.table = table
        self.fail = fail
        self.asked: list[tuple[str, str]] = []
        self.refusals: list[str] = []
        self.passed: list[str] = []

    def connect_choice(self, host: str, address: str) -> Chosen | None:
        self.asked.append((host, address))
        if self.fail:
            raise RuntimeError("the store is gone")
        return Chosen(host, Interception(self.table.get(host, "decrypt"), "test"), address, None, "groep 7")

    def refused(self, chosen: Chosen) -> None:
        self.refusals.append(chosen.host)

    def passed_through(self, host: str) -> None:
        self.passed.append(host)


class Kept(asyncio.Protocol):
    """mitmproxy's protocol, as far as the front door can tell: it keeps every byte it is handed."""

    def __init__(self, kept: list[Kept]) -> None:
        self.data = bytearray()
        self.peer: object = None
        kept.append(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.peer = transport.get_extra_info("peername")
        assert isinstance(transport, asyncio.Transport)
        transport.write(b"mitmproxy here\r\n")

    def data_received(self, data: bytes) -> None:
        self.data += data


class Origin:
    """A plain TCP server on 127.0.0.1: keeps what each connection sent, and answers as `serve` says."""

    def __init__(self, serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> None:
        self.serve = serve
        self.port = 0
        self.accepted = 0

    async def start(self) -> asyncio.Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            try:
                await self.serve(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server


async def echo_after_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads to the end, then answers with what it read: needs the client's half-close to reach it."""
    data = await reader.read()
    writer.write(b"got " + data)
    await writer.drain()


async def front(choices: Choices, kept: list[Kept], idle: float = 600.0,
                blocked: bool = False) -> tuple[FrontDoor, asyncio.Server, int]:
    door = FrontDoor(choices, lambda: None, lambda: idle, lambda address: blocked)
    server = await asyncio.get_running_loop().create_server(door.wrap(lambda: Kept(kept)), "127.0.0.1", 0)
    return door, server, server.sockets[0].getsockname()[1]


async def tunnel(port: int, target: str, first: bytes = b"") -> tuple[Client, bytes]:
    """A CONNECT to `target` through the front door: the streams and the answer's head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode() + first)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return (reader, writer), head


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


def test_a_passed_through_tunnel_is_relayed_both_ways_with_its_half_close() -> None:
    async def test() -> None:
        origin = Origin(echo_after_eof)
        async with await origin.start():
            choices, kept = Choices({"localhost": "passthrough"}), []
            _, server, port = await front(choices, kept)
            async with server:
                hello = client_hello("localhost")
                (reader, writer), head = await tunnel(port, f"localhost:{origin.port}", hello)
                assert head == b"HTTP/1.1 200 Connection established\r\n\r\n"
                writer.write(b"and more")
                writer.write_eof()
                answer = await asyncio.wait_for(reader.read(), 5)
                assert answer == b"got " + hello + b"and more"
                writer.close()
        assert kept == [] and choices.passed == ["localhost"]
        assert choices.asked == [("localhost", "127.0.0.1")]
    run(test)


def test_the_servers_close_reaches_the_client() -> None:
    async def greet_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"bye")
        await writer.drain()

    async def test() -> None:
        origin = Origin(greet_and_close)
        async with await origin.start():
            door, server, port = await front(Choices({"localhost": "passthrough"}), [])
            async with server:
                (reader, writer), _ = await tunnel(port, f"localhost:{origin.port}", client_hello("localhost"))
                assert await asyncio.wait_for(reader.read(), 5) == b"bye"
                writer.close()
                await asyncio.sleep(0.05)
                assert not door.open
    run(test)


@pytest.mark.parametrize("request_bytes", [
    b"GET http://example.org/ HTTP/1.1\r\nHost: example.org\r\n\r\n",  # plain HTTP through the proxy
    b"CONNECT chat.example:443 HTTP/1.1\r\nHost: chat.example:443\r\n\r\n" + b"\x16\x03\x01",  # decrypted
    b"CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n",  # an address, not a name: the ClientHello names the host
    b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n",
    b"CONNECT localhost:99999 HTTP/1.1\r\n\r\n",  # no such port
    b"CONNECT localhost HTTP/1.1\r\n\r\n",  # not host:port
    b"CONNECT localhost:443 HTTP/1.1\n\n",  # bare line feeds: mitmproxy reads them (the front door waited for ever)
    b"\x16\x03\x01\x00\x05hello",  # not HTTP at all
    b"CONNECT localhost:443 HTTP/1.1\r\n" + b"X-Long: " + b"a" * MAX_HEAD,  # a head without an end in sight
])
def test_everything_else_reaches_mitmproxy_untouched(request_bytes: bytes) -> None:
    async def test() -> None:
        choices, kept = Choices({"localhost": "passthrough"}), []
        _, server, port = await front(choices, kept)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request_bytes)
            assert await asyncio.wait_for(reader.readline(), 5) == b"mitmproxy here\r\n"
            for _ in range(100):
                if len(kept) == 1 and len(kept[0].data) >= len(request_bytes):
                    break
                await asyncio.sleep(0.02)
            assert len(kept) == 1 and bytes(kept[0].data) == request_bytes
            assert kept[0].peer == writer.get_extra_info("sockname")  # the same client, the same address
            writer.close()
        assert choices.passed == []
    run(test)


def test_a_head_in_pieces_is_read_whole_before_the_choice() -> None:
    async def test() -> None:
        origin = Origin(echo_after_eof)
        async with await origin.start():
            choices = Choices({"localhost": "passthrough"})
            _, server, port = await front(choices, [])
            async with server:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                request = f"CONNECT localhost:{origin.port} HTTP/1.0\r\nUser-Agent: x\r\n\r\n".encode()
                hello = client_hello("localhost")
                for piece in (request[:3], request[3:20], request[20:], hello[:50], hello[50:]):
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.02)
                assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.0 200 Connection established\r\n\r\n"
                writer.write_eof()
                assert await asyncio.wait_for(reader.read(), 5) == b"got " + hello
                writer.close()
            assert choices.asked == [("localhost", "127.0.0.1")]
    run(test)


@pytest.mark.parametrize(("name", "relayed", "refused"), [
    ("other.example", True, []),  # another host that is passed through too
    ("chat.example", False, []),  # one that must be decrypted: the tunnel is closed
    ("dns.example", False, ["dns.example"]),  # one that is refused: closed and recorded
])
def test_a_server_name_other_than_the_connects_is_judged_too(name: str, relayed: bool, refused: list[str]) -> None:
    async def test() -> None:
        origin = Origin(echo_after_eof)
        async with await origin.start():
            choices = Choices({"localhost": "passthrough", "other.example": "passthrough", "dns.example": "refuse"})
            _, server, port = await front(choices, [])
            async with server:
                hello = client_hello(name)
                (reader, writer), _ = await tunnel(port, f"localhost:{origin.port}", hello)
                writer.write_eof()
                answer = await asyncio.wait_for(reader.read(), 5)
                assert answer == (b"got " + hello if relayed else b"")
                writer.close()
        assert origin.accepted == (1 if relayed else 0)
        assert choices.refusals == refused
        assert choices.passed == ([name] if relayed else [])  # the name judged is the one noted for the dry run
    run(test)


def test_a_broken_client_hello_closes_the_tunnel_and_nothing_is_connected() -> None:
    async def test() -> None:
        origin = Origin(echo_after_eof)
        async with await origin.start():
            _, server, port = await front(Choices({"localhost": "passthrough"}), [])
            async with server:
                broken = b"\x16\x03\x01\x00\x08" + b"\x01\x00\x00\x04abcd"  # a ClientHello too short for itself
                (reader, writer), _ = await tunnel(port, f"localhost:{origin.port}", broken)
                assert await asyncio.wait_for(reader.read(), 5) == b""
                writer.close()
        assert origin.accepted == 0
    run(test)


def test_an_unreachable_server_closes_the_tunnel() -> None:
    async def test() -> None:
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        closed_port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        door, server, port = await front(Choices({"localhost": "passthrough"}), [])
        async with server:
            (reader, writer), head = await tunnel(port, f"localhost:{closed_port}", client_hello("localhost"))
            assert head.startswith(b"HTTP/1.1 200")  # answered first, as mitmproxy does with lazy connections
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
        assert not door.open
    run(test)


def test_a_failing_choice_hands_the_connection_to_mitmproxy() -> None:
    async def test() -> None:
        kept: list[Kept] = []
        _, server, port = await front(Choices({}, fail=True), kept)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"CONNECT localhost:443 HTTP/1.1\r\n\r\n")
            assert await asyncio.wait_for(reader.readline(), 5) == b"mitmproxy here\r\n"
            writer.close()
        assert len(kept) == 1
    run(test)


def test_an_idle_tunnel_is_closed_after_the_timeout_and_a_busy_one_is_not() -> None:
    async def chatter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)

    async def test() -> None:
        origin = Origin(chatter)
        async with await origin.start():
            door, server, port = await front(Choices({"localhost": "passthrough"}), [], idle=0.4)
            async with server:
                hello = client_hello("localhost")
                (reader, writer), _ = await tunnel(port, f"localhost:{origin.port}", hello)
                assert await asyncio.wait_for(reader.readexactly(len(hello)), 5) == hello
                for n in range(8):  # 0.8 s, twice the timeout, never 0.4 s quiet
                    writer.write(b"ping %d\n" % n)
                    assert await asyncio.wait_for(reader.readline(), 5) == b"ping %d\n" % n
                    await asyncio.sleep(0.1)
                started = asyncio.get_running_loop().time()
                assert await asyncio.wait_for(reader.read(), 5) == b""  # quiet now: closed
                assert 0.2 < asyncio.get_running_loop().time() - started < 2
                writer.close()
            assert not door.open
    run(test)


def test_a_slow_client_pauses_the_server_instead_of_filling_memory() -> None:
    size = 32 * 1024 * 1024

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunk = b"x" * 65536
        for _ in range(size // len(chunk)):
            writer.write(chunk)
            await writer.drain()

    async def test() -> None:
        origin = Origin(flood)
        async with await origin.start():
            door, server, port = await front(Choices({"localhost": "passthrough"}), [])
            async with server:
                (reader, writer), _ = await tunnel(port, f"localhost:{origin.port}", client_hello("localhost"))
                await asyncio.sleep(0.5)  # the client reads nothing for a while
                (doorway,) = door.open
                assert doorway.transport is not None
                held = doorway.transport.get_write_buffer_size()
                assert held < 2 * 1024 * 1024, held  # without back-pressure all 32 MB would wait here
                got = 0
                while chunk := await asyncio.wait_for(reader.read(1 << 20), 10):
                    got += len(chunk)
                assert got == size
                writer.close()
    run(test)


def test_a_client_mitmproxy_would_block_is_handed_to_it() -> None:
    """block_global and block_private are mitmproxy's: the front door never relays for a client they refuse."""
    async def test() -> None:
        choices, kept = Choices({"localhost": "passthrough"}), []
        _, server, port = await front(choices, kept, blocked=True)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"CONNECT localhost:443 HTTP/1.1\r\n\r\n")
            assert await asyncio.wait_for(reader.readline(), 5) == b"mitmproxy here\r\n"
            writer.close()
        assert len(kept) == 1 and choices.asked == [] and choices.passed == []
    run(test)


@pytest.mark.parametrize(("address", "block_global", "block_private", "blocked"), [
    ("8.8.8.8", True, False, True),  # mitmproxy's default: the internet is refused
    ("8.8.8.8", False, False, False),
    ("::ffff:8.8.8.8", True, False, True),
    ("2001:4860:4860::8888", True, False, True),
    ("10.20.0.7", True, False, False),  # a pupil's device
    ("10.20.0.7", True, True, True),
    ("fd00::7", False, True, True),
    ("127.0.0.1", True, True, False),  # loopback: always
    ("::1", True, True, False),
    ("fe80::1%lan0", True, False, False),  # link-local: neither global nor refused by default
    ("", True, False, True),  # no address: mitmproxy decides
])
def test_blocked_client_is_mitmproxys_block_rule(address: str, block_global: bool, block_private: bool,
                                                 blocked: bool) -> None:
    assert blocked_client(address, block_global, block_private) is blocked


def test_a_client_that_never_sends_its_request_is_closed_after_the_timeout() -> None:
    async def test() -> None:
        kept: list[Kept] = []
        _, server, port = await front(Choices({"localhost": "passthrough"}), kept, idle=0.3)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"CONNECT local")  # and then nothing
            started = asyncio.get_running_loop().time()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            assert 0.2 < asyncio.get_running_loop().time() - started < 2
            writer.close()
            # Handed to mitmproxy, a connection is timed by mitmproxy's own watchdog, not this one.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\n\r\n")
            assert await asyncio.wait_for(reader.readline(), 5) == b"mitmproxy here\r\n"
            await asyncio.sleep(0.6)
            assert not writer.is_closing() and not reader.at_eof()
            writer.close()
        assert len(kept) == 1
    run(test)


def test_a_tunnel_to_the_proxy_itself_is_closed_not_relayed() -> None:
    """CONNECT localhost:<the proxy's port>: relayed, the pupil's bytes would come back from the proxy's own address
    (judged as its, not the pupil's); closed, as mitmproxy refuses a connection to itself."""
    async def test() -> None:
        choices, kept = Choices({"localhost": "passthrough"}), list[Kept]()
        door, server, port = await front(choices, kept)
        async with server:
            (reader, writer), head = await tunnel(port, f"localhost:{port}", client_hello("localhost"))
            assert head.startswith(b"HTTP/1.1 200")
            assert await asyncio.wait_for(reader.read(), 5) == b""  # not "mitmproxy here" from a second round
            writer.close()
            await asyncio.sleep(0.1)
            assert kept == [] and not door.open
    run(test)


class Answering(Kept):
    """mitmproxy's protocol handed a replayed CONNECT: it answers the CONNECT (`answer`), then says hello."""

    def __init__(self, kept: list[Kept], answer: bytes) -> None:
        super().__init__(kept)
        self.answer = answer
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.peer = transport.get_extra_info("peername")
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.data += data
        if self.transport is not None and b"\r\n\r\n" in self.data:
            self.transport.write(self.answer + b"mitmproxy here\r\n")  # one write: the answer and what follows
            self.transport = None


@pytest.mark.parametrize(("answer", "read"), [
    (b"HTTP/1.1 200 Connection established\r\n\r\n", b"mitmproxy here\r\n"),  # its 200 dropped: one 200 only
    (b"HTTP/1.1 403 Forbidden\r\n\r\n", b""),  # too late to refuse: closed
])
def test_a_tunnel_that_is_not_tls_is_handed_to_mitmproxy_with_its_connect(answer: bytes, read: bytes) -> None:
    """Plain HTTP in a passed-through tunnel: mitmproxy judges each request by its Host header; relayed, a request
    for any host could reach a passed-through host's server (a CDN serves them all)."""
    async def test() -> None:
        origin = Origin(echo_after_eof)
        async with await origin.start():
            choices, kept = Choices({"localhost": "passthrough"}), list[Kept]()
            door = FrontDoor(choices, lambda: None, lambda: 600.0, lambda address: False)
            server = await asyncio.get_running_loop().create_server(
                door.wrap(lambda: Answering(kept, answer)), "127.0.0.1", 0)
            async with server:
                port = server.sockets[0].getsockname()[1]
                inside = b"GET / HTTP/1.1\r\nHost: chat.example\r\n\r\n"
                (reader, writer), head = await tunnel(port, f"localhost:{origin.port}", inside)
                assert head == b"HTTP/1.1 200 Connection established\r\n\r\n"
                assert await asyncio.wait_for(reader.read(len(read) or 1), 5) == read
                writer.close()
        connect = f"CONNECT localhost:{origin.port} HTTP/1.1\r\nHost: localhost:{origin.port}\r\n\r\n".encode()
        assert len(kept) == 1 and bytes(kept[0].data) == connect + inside
        assert origin.accepted == 0 and choices.passed == []
    run(test)


def test_a_fast_client_is_paused_when_the_first_write_fills_a_slow_servers_buffer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the client sent while the server was connected can fill the server's buffer at once: the client is not
    read again until the server takes it (before, reading resumed and a client could fill the proxy's memory)."""
    # Loopback's socket buffers take about a megabyte at once; with a network's they take far less than MAX_PENDING.
    monkeypatch.setattr(frontdoor, "MAX_PENDING", 8 << 20)

    done = asyncio.Event()

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await done.wait()
        writer.transport.abort()

    async def test() -> None:
        listening = socket.socket()
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow server: a small window
        listening.bind(("127.0.0.1", 0))
        listening.listen(0)
        # Its queue full: the front door's connection is made on the second SYN, a second later, while the client
        # sends, so that the first write to the server is MAX_PENDING.
        filler = socket.create_connection(listening.getsockname())
        door, server, port = await front(Choices({"localhost": "passthrough"}), [])
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            target = f"localhost:{listening.getsockname()[1]}"
            writer.write(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode() + client_hello("localhost"))
            writer.write(b"x" * (24 << 20))
            await asyncio.sleep(0.5)
            origin = await asyncio.start_server(never_read, sock=listening)  # takes the queue's connection
            async with origin:
                try:
                    for _ in range(60):
                        await asyncio.sleep(0.1)
                        if door.open:
                            break
                    await asyncio.sleep(1)
                    (doorway,) = door.open
                    assert doorway.upstream is not None and doorway.upstream.transport is not None
                    held = doorway.upstream.transport.get_write_buffer_size()
                    assert held < 12 << 20, held  # 8 MB at most; without the pause the client's 24 MB would wait here
                finally:
                    writer.transport.abort()
                    for doorway in door.open:  # a close would wait for the server to read the rest
                        if doorway.upstream is not None and doorway.upstream.transport is not None:
                            doorway.upstream.transport.abort()
                    filler.close()
                    done.set()
    run(test)


def test_a_connection_the_front_door_ends_itself_is_counted_once() -> None:
    """klaswacht_worker_connections counts every connection accepted: one the front door closes before relaying
    it (here a request that never ends) is counted by `ended`; one handed to mitmproxy is mitmproxy's to count."""
    async def test() -> None:
        ended: list[int] = []
        door = FrontDoor(Choices({}), lambda: None, lambda: 0.3, lambda address: False, ended=lambda: ended.append(1))
        server = await asyncio.get_running_loop().create_server(door.wrap(lambda: Kept([])), "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"CONNECT local")
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\n\r\n")
            assert await asyncio.wait_for(reader.readline(), 5) == b"mitmproxy here\r\n"
            writer.close()
            await asyncio.sleep(0.1)
        assert ended == [1]
    run(test)
