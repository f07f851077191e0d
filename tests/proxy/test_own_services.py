"""The gateway's own services are not reachable through the proxy (proxy/direct.py, proxy/reuseport.py).

No address of the machine is reached through the proxy: a pupil who asks for http://127.0.0.1:<port>/, tunnels
to localhost:<port> or names one of the gateway's other addresses gets an error. With
`--allow-gateway-addresses` (a school service on the gateway; the tests' servers on loopback) they are, except
the ports `klaswacht run` passes to its workers with `--protect-port`: the dashboard's and the metrics' (and a
local PostgreSQL's).
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from proxy_helpers import QuietHandler, Running, client_hello, fetch, serving, start, stopped_after

from klaswacht.run import protected_ports


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def other_server() -> Iterator[int]:
    """An ordinary web server on loopback, on a port that is not one of the gateway's services."""
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.answer(b"an ordinary page")

    with serving(Handler) as (port, _):
        yield port


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[Running, int, int]]:
    dashboard, metrics = free_port(), free_port()
    running = start(tmp_path / "data", "--period", "lesson", "--dashboard-port", str(dashboard),
                    "--metrics-port", str(metrics), "--allow-gateway-addresses")
    yield from ((r, dashboard, metrics) for r in stopped_after(running))


def tunnel_answer(proxy: str, target: str) -> bytes:
    """What comes back through a CONNECT tunnel to `target` after a ClientHello for 'localhost'."""
    host, port = proxy.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as tunnel:
        tunnel.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        received = tunnel.recv(4096)
        if not received.startswith(b"HTTP/1.1 200"):
            return received
        tunnel.sendall(client_hello("localhost"))
        received = b""
        while chunk := tunnel.recv(4096):
            received += chunk
        return received


def test_the_dashboard_and_metrics_are_not_reachable_through_the_proxy(gateway: tuple[Running, int, int],
                                                                       other_server: int) -> None:
    running, dashboard, metrics = gateway
    assert running.lines["dashboard"].endswith(f":{dashboard}/")  # the ports the test chose are the ones in use
    for url in (f"http://127.0.0.1:{dashboard}/", f"http://localhost:{metrics}/metrics"):
        status, body = fetch(running.proxy, url)
        assert status == 502 and "a service of the gateway itself" in body, (url, status, body)
    # A tunnel (the front door's path for a passed-through name): answered, then closed at once, nothing relayed;
    # the metrics server would have answered the bytes it got (a 400).
    assert tunnel_answer(running.proxy, f"localhost:{metrics}") == b""
    # With --allow-gateway-addresses any other port on loopback is a server like any other.
    assert fetch(running.proxy, f"http://127.0.0.1:{other_server}/") == (200, "an ordinary page")


def own_addresses() -> list[str]:
    """The machine's addresses other than loopback (`ip`, from iproute2), IPv4 and IPv6."""
    try:
        shown = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    found = [line.split()[3].split("/")[0] for line in shown.stdout.splitlines() if " inet" in line]
    return [a for a in found if a not in ("127.0.0.1", "::1") and not a.startswith("fe80")]


@pytest.fixture
def everywhere_server() -> Iterator[int]:
    """An ordinary web server listening on every address of the machine, IPv4 and IPv6."""
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.answer(b"a service of the gateway")

    class DualStack(ThreadingHTTPServer):
        address_family = socket.AF_INET6  # on "::" Linux takes IPv4 too

    server = DualStack(("::", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_no_address_of_the_gateway_is_reachable_through_the_proxy(tmp_path: Path, everywhere_server: int) -> None:
    """By address, by name, through a tunnel, on loopback and on the machine's other addresses: a local SSH or
    database that trusts the gateway's own address is out of the pupils' reach."""
    port = everywhere_server
    for running in stopped_after(start(tmp_path / "data", "--period", "lesson")):
        urls = [f"http://127.0.0.1:{port}/", f"http://localhost:{port}/", f"http://127.0.0.2:{port}/",
                f"http://[::1]:{port}/", f"http://0.0.0.0:{port}/", f"http://2130706433:{port}/"]
        urls += [f"http://{a}:{port}/" if ":" not in a else f"http://[{a}]:{port}/" for a in own_addresses()]
        for url in urls:
            status, body = fetch(running.proxy, url)
            assert status == 502 and "an address of the gateway itself" in body, (url, status, body)
        # The server answers a ClientHello it cannot read with a 400: through the tunnel nothing comes back.
        assert tunnel_answer(running.proxy, f"localhost:{port}") == b""


@pytest.mark.parametrize(("dashboard", "metrics", "database", "ports"), [
    (8081, 9464, "", [8081, 9464]),
    (0, 0, "", []),  # free ports chosen at start: not known to the workers
    (8081, 9464, "postgresql://klaswacht@localhost/klaswacht", [5432, 8081, 9464]),
    (8081, 0, "postgresql://klaswacht:secret@127.0.0.1:6543/klaswacht", [6543, 8081]),
    (8081, 0, "postgresql://klaswacht@db.bestuur.example/klaswacht", [8081]),  # another machine's
])
def test_the_protected_ports_are_the_gateways_own_services(dashboard: int, metrics: int, database: str,
                                                            ports: list[int]) -> None:
    args = argparse.Namespace(dashboard_port=dashboard, metrics_port=metrics, database=database)
    assert protected_ports(args) == ports


def other_spellings(address: str) -> list[str]:
    """`address` written otherwise: IPv4 as an IPv4-mapped IPv6 address in hex, IPv6 in full and in capitals."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv4Address):
        mapped = int(ip)
        return [f"::ffff:{mapped >> 16:x}:{mapped & 0xFFFF:x}", f"::FFFF:{ip}"]
    return [ip.exploded, ip.compressed.upper()]


def test_no_address_of_the_gateway_is_reachable_however_it_is_written(tmp_path: Path, everywhere_server: int) -> None:
    """The kernel writes an address one way; a pupil may write it another (asyncio connects to an address as
    written, without resolving it): ::ffff:c000:202 is 192.0.2.2."""
    port = everywhere_server
    addresses = [*own_addresses(), "127.0.0.1"]  # on a machine with loopback only, its spellings
    for running in stopped_after(start(tmp_path / "data", "--period", "lesson")):
        for address in addresses:
            for spelled in other_spellings(address):
                status, body = fetch(running.proxy, f"http://[{spelled}]:{port}/")
                assert status == 502 and "an address of the gateway itself" in body, (spelled, status, body)
                assert tunnel_answer(running.proxy, f"[{spelled}]:{port}") == b"", spelled
