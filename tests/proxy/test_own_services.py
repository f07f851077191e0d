"""The gateway's own services are not reachable through the proxy (proxy/direct.py, proxy/frontdoor.py).

`klaswacht run` passes the dashboard's and the metrics' ports (and a local PostgreSQL's) to its workers with
`--protect-port`; a pupil who asks the proxy for http://127.0.0.1:<dashboard>/ or tunnels to localhost:<metrics>
gets an error, while any other port on loopback is a server like any other.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterator
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
                    "--metrics-port", str(metrics))
    yield from ((r, dashboard, metrics) for r in stopped_after(running))


def test_the_dashboard_and_metrics_are_not_reachable_through_the_proxy(gateway: tuple[Running, int, int],
                                                                       other_server: int) -> None:
    running, dashboard, metrics = gateway
    assert running.lines["dashboard"].endswith(f":{dashboard}/")  # the ports the test chose are the ones in use
    for url in (f"http://127.0.0.1:{dashboard}/", f"http://localhost:{metrics}/metrics"):
        status, body = fetch(running.proxy, url)
        assert status == 502 and "a service of the gateway itself" in body, (url, status, body)
    # A tunnel (the front door's path for a passed-through name): answered, then closed at once, nothing relayed.
    host, port = running.proxy.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as tunnel:
        tunnel.sendall(f"CONNECT localhost:{metrics} HTTP/1.1\r\nHost: localhost:{metrics}\r\n\r\n".encode())
        assert tunnel.recv(4096).startswith(b"HTTP/1.1 200")
        tunnel.sendall(client_hello("localhost"))
        received = b""
        while chunk := tunnel.recv(4096):
            received += chunk
        assert received == b""  # the metrics server would have answered the bytes it got (a 400)
    # Any other port on loopback is a server like any other.
    assert fetch(running.proxy, f"http://127.0.0.1:{other_server}/") == (200, "an ordinary page")


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
