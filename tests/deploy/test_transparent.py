"""Transparent mode on a gateway: deploy/nftables/klaswacht.nft and `klaswacht run --transparent`, for real.

Three network namespaces stand for a school, in IPv4 and IPv6 (ULA) alike: a pupil's device (10.77.1.2 and
fd77:1::2, and staff addresses 10.77.1.200 and fd77:1::c8 in the bypass ranges on the same link), the gateway
(10.77.1.1 and fd77:1::1 on the pupils' side, 10.77.2.1 and fd77:2::1 on the other) that runs klaswacht with
the ruleset loaded, and an upstream web server (10.77.2.2 and fd77:2::2) that records every request.
HTTP is driven, and HTTPS by its server name (SNI): an ordinary host passed through, a DoH resolver refused;
and connections made straight to the proxy's port, which the ruleset refuses and the proxy never follows.

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
from klaswacht.run import _worker_command, listen_host
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
class Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6
def family(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET
def echo(address, port):
    s = socket.socket(family(address), socket.SOCK_DGRAM)
    s.bind((address, port))
    while True:
        data, peer = s.recvfrom(2048)
        note({"kind": "udp", "port": port, "client": peer[0]})
        s.sendto(data, peer)
def tls_port(address):
    # TCP 443: notes each connection and its first byte (0x16: a ClientHello that was not decrypted), then closes.
    s = socket.create_server((address, 443), family=family(address))
    while True:
        conn, peer = s.accept()
        conn.settimeout(5)
        try:
            first = conn.recv(1)
        except OSError:
            first = b""
        note({"kind": "tls", "client": peer[0], "first": first.hex()})
        conn.close()
for address in sys.argv[2:]:
    for port in (443, 4433):  # an echo on 443 too: a refusal can only come from the gateway's rule
        threading.Thread(target=echo, args=(address, port), daemon=True).start()
    threading.Thread(target=tls_port, args=(address,), daemon=True).start()
    server = (Server6 if ":" in address else ThreadingHTTPServer)((address, 80), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

HTTP_CLIENT = r"""
import http.client, json, sys
source, server, port, host = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
conn = http.client.HTTPConnection(server, port, timeout=15, source_address=(source, 0))
try:
    conn.request("GET", "/", headers={"Host": host})
    response = conn.getresponse()
except ConnectionRefusedError:
    print(json.dumps({"status": "refused"}))
except (http.client.RemoteDisconnected, ConnectionResetError):
    print(json.dumps({"status": "closed"}))
else:
    print(json.dumps({"status": response.status, "body": response.read().decode("utf-8", "replace")}))
"""

TLS_CLIENT = r"""
import socket, ssl, sys
source, server, name = sys.argv[1], sys.argv[2], sys.argv[3]
sock = socket.create_connection((server, 443), timeout=10, source_address=(source, 0))
try:
    with ssl.create_default_context().wrap_socket(sock, server_hostname=name) as tls:
        print("handshake")
except (ssl.SSLError, ConnectionError, TimeoutError, OSError) as e:
    print("closed")
"""

UDP_CLIENT = r"""
import socket, sys
source, server, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.bind((source, 0))
s.connect((server, port))
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


def ruleset(pupil_if: str, port: int) -> str:
    """The shipped ruleset with its variables set for the test's network, as an administrator would edit them:
    the staff ranges (bypass) lie inside the pupils' subnets."""
    text = RULESET.read_text()
    for name, value in (("PUPIL_IF", f'"{pupil_if}"'), ("PUPIL_NET", "10.77.1.0/24"), ("PUPIL_NET6", "fd77:1::/64"),
                        ("BYPASS_NETS", "{ 10.77.1.192/27 }"), ("BYPASS_NETS6", "{ fd77:1::c0/122 }"),
                        ("PROXY_PORT", str(port))):
        text, count = re.subn(rf"^define {name} = .*$", f"define {name} = {value}", text, flags=re.M)
        assert count == 1, name
    return text


def test_run_transparent_runs_the_worker_in_transparent_mode() -> None:
    args = build_parser().parse_args(["run", "--transparent", "--listen-host", "10.77.1.1"])
    command = _worker_command(args, Path("/tmp/x"))
    assert command[command.index("--mode") + 1] == "transparent"
    assert command[command.index("--host") + 1] == "10.77.1.1"
    assert "--mode" not in _worker_command(build_parser().parse_args(["run"]), Path("/tmp/x"))


def test_run_transparent_listens_on_every_address_unless_told() -> None:
    """Transparent mode: both IPv4 and IPv6 (""), the redirect delivers to the incoming interface's address."""
    assert listen_host(build_parser().parse_args(["run", "--transparent"])) == ""
    assert listen_host(build_parser().parse_args(["run"])) == "127.0.0.1"
    assert listen_host(build_parser().parse_args(["run", "--listen-host", "10.0.0.1"])) == "10.0.0.1"


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
    edited.write_text(ruleset("veth-x", 8080))
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
    lines: dict[str, str] = field(default_factory=dict)  # klaswacht run's contract lines, once started

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

    def nft(self, text: str) -> None:
        """Loads a ruleset on the gateway."""
        path = self.tmp / f"ruleset-{secrets.token_hex(2)}.nft"
        path.write_text(text)
        result = self.inside("gw", need("nft", "nftables"), "-f", str(path))
        assert result.returncode == 0, result.stderr

    def start(self, *run_args: str) -> subprocess.Popen[str]:
        """The upstream server, the shipped ruleset on the gateway, and `klaswacht run --transparent` there."""
        upstream = self.spawn("up", sys.executable, "-c", UPSTREAM_SERVER, str(self.tmp / "upstream.log"),
                              UP4, UP6)
        assert upstream.stdout is not None
        assert upstream.stdout.readline().strip() == "ready", upstream.communicate(timeout=10)[1]
        self.nft(ruleset("lan0", PROXY_PORT))
        run = self.spawn("gw", str(KLASWACHT), "run", "--transparent", "--proxy-port", str(PROXY_PORT),
                         "--metrics-port", "0", "--workers", "1", "--period", "lesson",
                         "--data-dir", str(self.tmp / "data"), *run_args)
        assert run.stdout is not None
        for _ in range(4):  # klaswacht run bounds its own start (the worker's ready line) at 60 s
            line = run.stdout.readline()
            if not line:
                break
            name, _, value = line.strip().partition(": ")
            self.lines[name] = value
        if len(self.lines) < 4:
            run.kill()
            pytest.fail(f"klaswacht run --transparent did not start: {self.lines} {run.communicate(timeout=30)[1]}")
        return run

    def metric(self, name: str) -> float:
        return float(self.python("gw", METRIC, self.lines["metrics"], name))

    def fetch(self, role: str, source: str, server: str, host: str, port: int = 80) -> tuple[int | str, str]:
        answer = json.loads(self.python(role, HTTP_CLIENT, source, server, str(port), host))
        return answer["status"], answer.get("body", "")

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


# The school's network: pupils (and staff in the bypass ranges) on one link with the gateway, IPv4 and IPv6 (ULA).
PUPIL4, STAFF4, GW4, GW_WAN4, UP4 = "10.77.1.2", "10.77.1.200", "10.77.1.1", "10.77.2.1", "10.77.2.2"
PUPIL6, STAFF6, GW6, GW_WAN6, UP6 = "fd77:1::2", "fd77:1::c8", "fd77:1::1", "fd77:2::1", "fd77:2::2"


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
        for role, iface, address in (("pupil", "eth0", f"{PUPIL4}/24"), ("pupil", "eth0", f"{STAFF4}/24"),
                                     ("gw", "lan0", f"{GW4}/24"), ("gw", "wan0", f"{GW_WAN4}/24"),
                                     ("up", "eth0", f"{UP4}/24")):
            s.sh("-n", s.ns(role), "addr", "add", address, "dev", iface)
        # IPv6 without duplicate address detection: the addresses are usable at once, not after a second or two.
        for role, iface, address in (("pupil", "eth0", f"{PUPIL6}/64"), ("pupil", "eth0", f"{STAFF6}/64"),
                                     ("gw", "lan0", f"{GW6}/64"), ("gw", "wan0", f"{GW_WAN6}/64"),
                                     ("up", "eth0", f"{UP6}/64")):
            s.sh("-n", s.ns(role), "addr", "add", address, "dev", iface, "nodad")
        for role, iface in (("pupil", "eth0"), ("gw", "lan0"), ("gw", "wan0"), ("up", "eth0")):
            s.sh("-n", s.ns(role), "link", "set", iface, "up")
        for role in ("pupil", "gw", "up"):
            s.sh("-n", s.ns(role), "link", "set", "lo", "up")
        s.sh("-n", s.ns("pupil"), "route", "add", "default", "via", GW4)
        s.sh("-n", s.ns("up"), "route", "add", "default", "via", GW_WAN4)
        s.sh("-n", s.ns("pupil"), "-6", "route", "add", "default", "via", GW6)
        s.sh("-n", s.ns("up"), "-6", "route", "add", "default", "via", GW_WAN6)
        for setting in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            result = s.inside("gw", "sysctl", "-qw", setting)
            assert result.returncode == 0, result.stderr
        yield s
    finally:
        s.teardown()


@pytest.mark.parametrize(("pupil", "staff", "up", "gw_wan"), [(PUPIL4, STAFF4, UP4, GW_WAN4),
                                                               (PUPIL6, STAFF6, UP6, GW_WAN6)], ids=["ipv4", "ipv6"])
def test_transparent_gateway_filters_pupils_and_lets_staff_through(school: School, tmp_path: Path, pupil: str,
                                                                    staff: str, up: str, gw_wan: str) -> None:
    s = school
    # The shipped policy, with the test's pupils' subnets (both families) as the group "groep 7-8".
    policy = tmp_path / "policy.toml"
    policy.write_text((ROOT / "policies" / "primary.toml").read_text().replace(
        'subnets = ["10.20.78.0/24"]', 'subnets = ["10.77.1.0/24", "fd77:1::/64"]'))
    run = s.start("--policy", str(policy), "--dashboard-port", "0")
    # No --listen-host: transparent mode listens on every address, IPv4 and IPv6.
    assert s.lines["proxy"] in (f"http://0.0.0.0:{PROXY_PORT}", f"http://[::]:{PROXY_PORT}")
    assert s.lines["metrics"].startswith("http://127.0.0.1:")  # the gateway's loopback

    def decisions() -> float:
        return s.metric("klaswacht_decision_seconds_count")

    # An allowed site: through the proxy (the upstream sees the gateway's address), judged once.
    before = decisions()
    assert s.fetch("pupil", pupil, up, "www.wikipedia.org") == (200, "upstream page")
    assert until(lambda: decisions() == before + 1)
    assert [(r["client"], r["host"]) for r in s.seen() if r["kind"] == "http"] == [(gw_wan, "www.wikipedia.org")]

    # A closed site: the proxy's block page, and nothing reaches the upstream server.
    status, body = s.fetch("pupil", pupil, up, "www.tiktok.com")
    assert status == 403, body
    assert "tiktok" in body.lower()
    assert not [r for r in s.seen() if r.get("host") == "www.tiktok.com"]

    # Staff (the bypass range): straight to the upstream server with its own address, unseen by the proxy.
    before = decisions()
    assert s.fetch("pupil", staff, up, "www.tiktok.com") == (200, "upstream page")
    assert until(lambda: any(r.get("client") == staff for r in s.seen()))
    assert decisions() == before

    # QUIC from pupils is refused at the gateway (the echo on 443 never hears it); other UDP passes.
    assert s.python("pupil", UDP_CLIENT, pupil, up, "443") == "refused"
    assert s.python("pupil", UDP_CLIENT, pupil, up, "4433") == "echo"
    assert not [r for r in s.seen() if r["kind"] == "udp" and r["port"] == 443]
    assert s.python("pupil", UDP_CLIENT, staff, up, "443") == "echo"  # staff: QUIC too

    # HTTPS, chosen at the ClientHello by its server name (the shipped policy: passthrough, refuse doh and vpn).
    # An ordinary host: passed through undecrypted, the upstream gets the pupil's own ClientHello.
    assert s.python("pupil", TLS_CLIENT, pupil, up, "www.speelgoedwinkel.nl") == "closed"  # upstream: no TLS
    assert until(lambda: [r["first"] for r in s.seen() if r["kind"] == "tls"] == ["16"])
    assert s.metric('klaswacht_tls_connections_total{choice="passthrough"}') == 1
    assert s.metric("klaswacht_relayed_connections_total") == 1  # by the front door, to the original destination
    # A DoH resolver's name: refused at the ClientHello, the connection closed, the upstream never contacted.
    assert s.python("pupil", TLS_CLIENT, pupil, up, "dns.google") == "closed"
    assert s.metric('klaswacht_refused_connections_total{category="doh"}') == 1
    assert len([r for r in s.seen() if r["kind"] == "tls"]) == 1

    # Stopped cleanly, the blocks are in the store with the pupil's device and the group of its subnet.
    os.killpg(run.pid, signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    data = s.tmp / "data"
    result = subprocess.run([str(KLASWACHT), "events", "--data-dir", str(data)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["action"], e["host"], e["group"]) for e in events] == [("block", "www.tiktok.com", "groep 7-8"),
                                                                      ("block", "dns.google", "groep 7-8")]
    assert {e["client"] for e in events} == {Pseudonyms(load_secret(data / "secret.key")).device(pupil)}


def test_transparent_gateway_refuses_direct_connections_to_the_proxy(school: School) -> None:
    """A pupil who sets the gateway up as an explicit proxy (or connects to its port) gets a refusal; the redirect,
    the setup page (its port 80 redirected to the proxy, deploy/README.md section 7) and the dashboard still work."""
    s = school
    run = s.start("--dashboard-host", "0.0.0.0", "--dashboard-port", "0")
    # The setup page's redirect of section 7: port 80 on the gateway's own address, to the proxy.
    s.nft(f"""table ip klaswacht_setup {{
        chain prerouting {{
            type nat hook prerouting priority dstnat; policy accept;
            iifname "lan0" ip daddr {GW4} tcp dport 80 redirect to :{PROXY_PORT}
        }}
    }}""")

    # Straight to the proxy's port, on either of the gateway's addresses and from staff too: a TCP reset from
    # the ruleset's input chain, and nothing reaches the proxy (its connection count stays where it was).
    connections = s.metric('klaswacht_worker_connections_total{worker="0"}')
    for source, gateway in ((PUPIL4, GW4), (PUPIL6, GW6), (STAFF4, GW4)):
        assert s.fetch("pupil", source, gateway, "www.wikipedia.org", PROXY_PORT)[0] == "refused", (source, gateway)
    assert s.metric('klaswacht_worker_connections_total{worker="0"}') == connections

    # What the firewall redirected still goes through the proxy.
    assert s.fetch("pupil", PUPIL4, UP4, "www.wikipedia.org") == (200, "upstream page")
    assert s.fetch("pupil", PUPIL6, UP6, "www.wikipedia.org") == (200, "upstream page")
    assert s.metric('klaswacht_worker_connections_total{worker="0"}') == connections + 2

    # The setup page: http://klaswacht.school/ (the gateway's address, port 80) is answered by the proxy.
    status, body = s.fetch("pupil", PUPIL4, GW4, "klaswacht.school")
    assert status == 200 and "klaswacht" in body.lower(), body
    # The dashboard's port is not the proxy's: the ruleset leaves it alone.
    dashboard_port = int(s.lines["dashboard"].rstrip("/").rsplit(":", 1)[1])
    assert s.fetch("pupil", STAFF4, GW4, "klaswacht.school", dashboard_port)[0] in (200, 302, 303)

    # The proxy's own guard, for a gateway without the input chain: the gateway's own loopback may reach the port
    # (the ruleset lets it; `klaswacht doctor` probes it there). A request there is judged as any other (a closed
    # site gets the block page), and an allowed one, which would send the proxy to itself again and again, gets
    # mitmproxy's error at once, on every address of the gateway. The proxy goes on serving.
    assert s.fetch("gw", GW4, GW4, "www.tiktok.com", PROXY_PORT)[0] == 403
    for address in (GW4, GW6, GW_WAN4):
        status, body = s.fetch("gw", address, address, "www.wikipedia.org", PROXY_PORT)
        assert status == 502 and "own port" in body, (address, status, body)
    assert s.fetch("gw", "127.0.0.1", "127.0.0.1", "www.wikipedia.org", PROXY_PORT)[0] == 502  # mitmproxy's guard
    assert [r["host"] for r in s.seen() if r["kind"] == "http"] == ["www.wikipedia.org"] * 2
    assert s.fetch("pupil", PUPIL4, UP4, "www.wikipedia.org") == (200, "upstream page")
    # `klaswacht doctor` on the gateway still knows its proxy (it asks on loopback).
    doctor = s.inside("gw", str(KLASWACHT), "doctor", "--transparent", "--data-dir", str(s.tmp / "data"),
                      "--proxy-port", str(PROXY_PORT), "--dashboard-port", "0", "--metrics-port", "0", timeout=60)
    assert f"proxy port: {PROXY_PORT}: klaswacht's proxy answers" in doctor.stdout, doctor.stdout

    os.killpg(run.pid, signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
