"""Transparent mode on a gateway: deploy/nftables/klaswacht.nft and `klaswacht run --transparent`, for real.

Three network namespaces stand for a school: a pupil's device (10.77.1.2, and a staff address 10.77.1.200 in
the bypass range on the same link), the gateway (10.77.1.1 on the pupils' side, 10.77.2.1 on the other) that
runs klaswacht with the ruleset loaded, and an upstream web server (10.77.2.2) that records every request.
HTTP is driven, and HTTPS by its server name (SNI): an ordinary host passed through, a DoH resolver refused.

Needs root and a kernel that allows network namespaces (skips otherwise); `ip` (iproute2) and `nft` (nftables)
must be installed (`.ci/run` installs nftables), or the test fails naming the package.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from klaswacht.cli import build_parser
from klaswacht.run import _worker_command
from klaswacht.store.privacy import Pseudonyms, load_secret

ROOT = Path(__file__).resolve().parents[2]
RULESET = ROOT / "deploy" / "nftables" / "klaswacht.nft"
KLASWACHT = Path(sys.executable).parent / "klaswacht"
PROXY_PORT = 8080
WAIT = 20.0  # the bound of every poll loop

UPSTREAM_SERVER = r"""
import json, socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
log = open(sys.argv[1], "a", buffering=1)
lock = threading.Lock()
def note(record):
    with lock:
        log.write(json.dumps(record) + "\n")
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        note({"kind": "http", "client": self.client_address[0], "host": self.headers.get("Host", ""),
              "path": self.path})
        body = b"upstream page"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
def echo(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.77.2.2", port))
    while True:
        data, peer = s.recvfrom(2048)
        note({"kind": "udp", "port": port, "client": peer[0]})
        s.sendto(data, peer)
for port in (443, 4433):  # an echo on 443 too: a refusal can only come from the gateway's rule
    threading.Thread(target=echo, args=(port,), daemon=True).start()
def tls_port():
    # TCP 443: notes each connection and its first byte (0x16: a ClientHello that was not decrypted), then closes.
    s = socket.create_server(("10.77.2.2", 443))
    while True:
        conn, peer = s.accept()
        conn.settimeout(5)
        try:
            first = conn.recv(1)
        except OSError:
            first = b""
        note({"kind": "tls", "client": peer[0], "first": first.hex()})
        conn.close()
threading.Thread(target=tls_port, daemon=True).start()
server = ThreadingHTTPServer(("10.77.2.2", 80), Handler)
print("ready", flush=True)
server.serve_forever()
"""

HTTP_CLIENT = r"""
import http.client, json, sys
source, host = sys.argv[1], sys.argv[2]
conn = http.client.HTTPConnection("10.77.2.2", 80, timeout=15, source_address=(source, 0))
conn.request("GET", "/", headers={"Host": host})
response = conn.getresponse()
print(json.dumps({"status": response.status, "body": response.read().decode("utf-8", "replace")}))
"""

TLS_CLIENT = r"""
import socket, ssl, sys
source, name = sys.argv[1], sys.argv[2]
sock = socket.create_connection(("10.77.2.2", 443), timeout=10, source_address=(source, 0))
try:
    with ssl.create_default_context().wrap_socket(sock, server_hostname=name) as tls:
        print("handshake")
except (ssl.SSLError, ConnectionError, TimeoutError, OSError) as e:
    print("closed")
"""

UDP_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.connect(("10.77.2.2", int(sys.argv[1])))
s.send(b"ping")
try:
    print("echo" if s.recv(2048) == b"ping" else "other")
except ConnectionRefusedError:
    print("refused")
except TimeoutError:
    print("timeout")
"""

METRIC = r"""
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
    for line in response.read().decode().splitlines():
        if line.startswith(sys.argv[2] + " "):
            print(line.split()[-1])
            break
    else:
        print(0)
"""


def need(name: str, package: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None)
    if path is None:
        pytest.fail(f"{name} not found: install the Debian package '{package}' (apt-get install {package})")
    return path


def until(check: Callable[[], bool], seconds: float = WAIT) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def ruleset(pupil_if: str, pupil_net: str, bypass: str, port: int) -> str:
    """The shipped ruleset with its variables set, as an administrator would edit them."""
    text = RULESET.read_text()
    for name, value in (("PUPIL_IF", f'"{pupil_if}"'), ("PUPIL_NET", pupil_net), ("BYPASS_NETS", bypass),
                        ("PROXY_PORT", str(port))):
        text, count = re.subn(rf"^define {name} = .*$", f"define {name} = {value}", text, flags=re.M)
        assert count == 1, name
    return text


def test_run_transparent_runs_the_worker_in_transparent_mode() -> None:
    args = build_parser().parse_args(["run", "--transparent", "--listen-host", "10.77.1.1"])
    command = _worker_command(args, Path("/tmp/x"))
    assert command[command.index("--mode") + 1] == "transparent"
    assert "--mode" not in _worker_command(build_parser().parse_args(["run"]), Path("/tmp/x"))


def test_run_refuses_transparent_with_upstream(tmp_path: Path) -> None:
    result = subprocess.run([str(KLASWACHT), "run", "--transparent", "--upstream", "http://127.0.0.1:3128",
                             "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--upstream" in result.stderr


def test_nft_accepts_the_ruleset(tmp_path: Path) -> None:
    """`nft -c -f` on the file as shipped, and with the variables set (a bypass range inside the pupils')."""
    nft = need("nft", "nftables")
    if os.geteuid() != 0:
        pytest.skip("nft -c needs root (CAP_NET_ADMIN) to check a ruleset against the kernel")
    edited = tmp_path / "klaswacht.nft"
    edited.write_text(ruleset("veth-x", "10.77.1.0/24", "{ 10.77.1.192/27 }", 8080))
    for path in (RULESET, edited):
        result = subprocess.run([nft, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"{path}: {result.stderr}"


@dataclass
class School:
    ip: str
    tag: str
    tmp: Path
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def ns(self, role: str) -> str:
        return f"kw-{role}-{self.tag}"

    def sh(self, *argv: str) -> None:
        result = subprocess.run([self.ip, *argv], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"ip {' '.join(argv)}: {result.stderr}"

    def inside(self, role: str, *argv: str, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.ip, "netns", "exec", self.ns(role), *argv], capture_output=True, text=True,
                              timeout=timeout)

    def python(self, role: str, script: str, *argv: str) -> str:
        result = self.inside(role, sys.executable, "-c", script, *argv)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def spawn(self, role: str, *argv: str) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if k != "KLASWACHT_DATABASE"}
        process = subprocess.Popen([self.ip, "netns", "exec", self.ns(role), *argv], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
        self.processes.append(process)
        return process

    def seen(self) -> list[dict[str, object]]:
        log = self.tmp / "upstream.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def teardown(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
            process.communicate()
        for name in self.namespaces:
            subprocess.run([self.ip, "netns", "del", name], capture_output=True, timeout=30)


@pytest.fixture
def school(tmp_path: Path) -> Iterator[School]:
    ip = need("ip", "iproute2")
    need("nft", "nftables")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    s = School(ip, secrets.token_hex(3), tmp_path)
    probe = subprocess.run([ip, "netns", "add", s.ns("pupil")], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        if re.search(r"permitted|permission|denied", probe.stderr, re.I):
            pytest.skip(f"the kernel forbids network namespaces here: {probe.stderr.strip()}")
        pytest.fail(f"ip netns add: {probe.stderr}")
    s.namespaces.append(s.ns("pupil"))
    try:
        for role in ("gw", "up"):
            s.sh("netns", "add", s.ns(role))
            s.namespaces.append(s.ns(role))
        # The veth ends are made inside the namespaces at once: no name clash with the host's interfaces.
        s.sh("-n", s.ns("pupil"), "link", "add", "eth0", "type", "veth", "peer", "name", "lan0",
             "netns", s.ns("gw"))
        s.sh("-n", s.ns("gw"), "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns", s.ns("up"))
        for role, iface, address in (("pupil", "eth0", "10.77.1.2/24"), ("pupil", "eth0", "10.77.1.200/24"),
                                     ("gw", "lan0", "10.77.1.1/24"), ("gw", "wan0", "10.77.2.1/24"),
                                     ("up", "eth0", "10.77.2.2/24")):
            s.sh("-n", s.ns(role), "addr", "add", address, "dev", iface)
        for role, iface in (("pupil", "eth0"), ("gw", "lan0"), ("gw", "wan0"), ("up", "eth0")):
            s.sh("-n", s.ns(role), "link", "set", iface, "up")
        for role in ("pupil", "gw", "up"):
            s.sh("-n", s.ns(role), "link", "set", "lo", "up")
        s.sh("-n", s.ns("pupil"), "route", "add", "default", "via", "10.77.1.1")
        s.sh("-n", s.ns("up"), "route", "add", "default", "via", "10.77.2.1")
        result = s.inside("gw", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        assert result.returncode == 0, result.stderr
        yield s
    finally:
        s.teardown()


def test_transparent_gateway_filters_pupils_and_lets_staff_through(school: School) -> None:
    s = school
    # The upstream web server (and UDP echoes on 443 and 4433).
    upstream = s.spawn("up", sys.executable, "-c", UPSTREAM_SERVER, str(s.tmp / "upstream.log"))
    assert upstream.stdout is not None
    assert upstream.stdout.readline().strip() == "ready", upstream.communicate(timeout=10)[1]

    # The ruleset, with the test's network in its variables; the staff range lies inside the pupils' subnet.
    edited = s.tmp / "klaswacht.nft"
    edited.write_text(ruleset("lan0", "10.77.1.0/24", "{ 10.77.1.192/27 }", PROXY_PORT))
    result = s.inside("gw", need("nft", "nftables"), "-f", str(edited))
    assert result.returncode == 0, result.stderr

    data = s.tmp / "data"
    run = s.spawn("gw", str(KLASWACHT), "run", "--transparent", "--listen-host", "10.77.1.1",
                  "--proxy-port", str(PROXY_PORT), "--dashboard-port", "0", "--metrics-port", "0",
                  "--period", "lesson", "--data-dir", str(data))
    lines: dict[str, str] = {}
    assert run.stdout is not None
    for _ in range(4):  # klaswacht run bounds its own start (the worker's ready line) at 60 s
        line = run.stdout.readline()
        if not line:
            break
        name, _, value = line.strip().partition(": ")
        lines[name] = value
    if len(lines) < 4:
        run.kill()
        pytest.fail(f"klaswacht run --transparent did not start: {lines} {run.communicate(timeout=30)[1]}")
    assert lines["proxy"] == f"http://10.77.1.1:{PROXY_PORT}"
    assert lines["metrics"].startswith("http://127.0.0.1:")  # the gateway's loopback

    def decisions() -> float:
        return float(s.python("gw", METRIC, lines["metrics"], "klaswacht_decision_seconds_count"))

    def fetch(source: str, host: str) -> tuple[int, str]:
        answer = json.loads(s.python("pupil", HTTP_CLIENT, source, host))
        return answer["status"], answer["body"]

    # An allowed site: through the proxy (the upstream sees the gateway's address), judged once.
    before = decisions()
    assert fetch("10.77.1.2", "www.wikipedia.org") == (200, "upstream page")
    assert until(lambda: decisions() == before + 1)
    assert [(r["client"], r["host"]) for r in s.seen() if r["kind"] == "http"] == [("10.77.2.1", "www.wikipedia.org")]

    # A closed site: the proxy's block page, and nothing reaches the upstream server.
    status, body = fetch("10.77.1.2", "www.tiktok.com")
    assert status == 403, body
    assert "tiktok" in body.lower()
    assert not [r for r in s.seen() if r.get("host") == "www.tiktok.com"]

    # Staff (the bypass range): straight to the upstream server with its own address, unseen by the proxy.
    before = decisions()
    assert fetch("10.77.1.200", "www.tiktok.com") == (200, "upstream page")
    assert until(lambda: any(r.get("client") == "10.77.1.200" for r in s.seen()))
    assert decisions() == before

    # QUIC from pupils is refused at the gateway (the echo on 443 never hears it); other UDP passes.
    assert s.python("pupil", UDP_CLIENT, "443") == "refused"
    assert s.python("pupil", UDP_CLIENT, "4433") == "echo"
    assert not [r for r in s.seen() if r["kind"] == "udp" and r["port"] == 443]

    # HTTPS, chosen at the ClientHello by its server name (the shipped policy: passthrough, refuse doh and vpn).
    # An ordinary host: passed through undecrypted, the upstream gets the pupil's own ClientHello.
    assert s.python("pupil", TLS_CLIENT, "10.77.1.2", "www.speelgoedwinkel.nl") == "closed"  # upstream: no TLS
    assert until(lambda: [r["first"] for r in s.seen() if r["kind"] == "tls"] == ["16"])
    assert float(s.python("gw", METRIC, lines["metrics"],
                          'klaswacht_tls_connections_total{choice="passthrough"}')) == 1
    # A DoH resolver's name: refused at the ClientHello, the connection closed, the upstream never contacted.
    assert s.python("pupil", TLS_CLIENT, "10.77.1.2", "dns.google") == "closed"
    assert float(s.python("gw", METRIC, lines["metrics"], 'klaswacht_refused_connections_total{category="doh"}')) == 1
    assert len([r for r in s.seen() if r["kind"] == "tls"]) == 1

    # Stopped cleanly, the blocks are in the store with the pupil's device, not the gateway.
    os.killpg(run.pid, signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    result = subprocess.run([str(KLASWACHT), "events", "--data-dir", str(data)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["action"], e["host"]) for e in events] == [("block", "www.tiktok.com"), ("block", "dns.google")]
    assert {e["client"] for e in events} == {Pseudonyms(load_secret(data / "secret.key")).device("10.77.1.2")}
