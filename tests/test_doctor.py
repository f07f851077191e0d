"""`klaswacht doctor`: a good deployment passes; each broken one is named, with a fix, and exits 1.

The good data dir is made by starting and stopping a real `klaswacht run` once.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from klaswacht import doctor
from klaswacht.cli import main
from klaswacht.configversion import config_version
from klaswacht.loading import DEFAULT_POLICY

sys.path.insert(0, str(Path(__file__).resolve().parent / "proxy"))
from proxy_helpers import start_with_a_banned_pupil

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_of(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]


@pytest.fixture(autouse=True)
def no_timedatectl(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether this machine's clock is synchronised is not the test's business: a warning, never a failure."""
    which = shutil.which
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None if name == "timedatectl" else which(name))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data dir made by a real `klaswacht run`, started and stopped; doctor's ports while it ran checked too.

    Loopback is a banned pupil's device: the proxy blocks everything doctor sends, as in a break, and doctor
    still knows it for klaswacht's."""
    data_dir = tmp_path_factory.mktemp("deploy") / "data"
    data_dir.mkdir(mode=0o700)
    running = start_with_a_banned_pupil(data_dir, "3001", "Sam de Vries", "127.0.0.1")
    try:
        ports = [port_of(running.lines[k]) for k in ("proxy", "dashboard", "metrics")]
        args = ["doctor", "--data-dir", str(data_dir), "--proxy-port", ports[0], "--dashboard-port", ports[1],
                "--metrics-port", ports[2]]
        result = subprocess.run([sys.executable, "-m", "klaswacht.cli", *args], capture_output=True, text=True,
                                timeout=60, check=False)
        running_output = result.stdout
        running_code = result.returncode
    finally:
        assert running.stop() == 0
    assert running_code == 0, running_output
    for kind, port in zip(("proxy", "dashboard", "metrics"), ports, strict=True):
        assert f"✓ {kind} port: {port}: klaswacht's {kind} answers" in running_output
    # The version the running proxy reports (its metrics) is the content hash of the policy on disk.
    version = config_version(DEFAULT_POLICY, [])
    assert f"✓ config version: the proxy runs {version} (local files, a content hash)" in running_output
    yield data_dir


def doctor_args(data_dir: Path, *extra: str) -> list[str]:
    return ["doctor", "--data-dir", str(data_dir), "--proxy-port", str(free_port()),
            "--dashboard-port", str(free_port()), "--metrics-port", str(free_port()), *extra]


def test_a_good_deployment_passes(deployment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(doctor_args(deployment)) == 0
    out = capsys.readouterr().out
    assert "✗" not in out
    for check in ("data dir", "CA", "database", "database lock", "disk", "policy", "lists", "config version",
                  "time zone", "clock", "proxy port", "dashboard port", "metrics port"):
        assert f"✓ {check}: " in out, check
    assert "schema version" in out and "(current)" in out
    assert "! clock sync: timedatectl not found" in out  # a warning, exit 0


Broken = tuple[list[str], Callable[[], None] | None]  # extra doctor arguments, a clean-up


def mode_0755(d: Path) -> Broken:
    d.chmod(0o755)
    return [], None


def ca_missing(d: Path) -> Broken:
    (d / "ca" / "mitmproxy-ca.pem").unlink()
    return [], None


def ca_corrupt(d: Path) -> Broken:
    (d / "ca" / "mitmproxy-ca-cert.pem").write_text("-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n")
    return [], None


def ca_expiring(d: Path) -> Broken:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mitmproxy")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=10))
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    (d / "ca" / "mitmproxy-ca.pem").write_bytes(key_pem + pem)
    (d / "ca" / "mitmproxy-ca-cert.pem").write_bytes(pem)
    return [], None


def database_locked(d: Path) -> Broken:
    """Another process holds the write lock (a sqlite3 shell left in a transaction, say)."""
    holder = subprocess.Popen([sys.executable, "-c", """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
print("ready", flush=True)
time.sleep(60)
""", str(d / "klaswacht.db")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"

    def stop() -> None:
        holder.kill()
        holder.communicate()

    return [], stop


def database_missing(d: Path) -> Broken:
    (d / "klaswacht.db").unlink()
    return [], None


def policy_syntax_error(d: Path) -> Broken:
    (d / "bad.toml").write_text('[school]\nname = "Testschool"\ntype = "primary"\n[filter\n')
    return ["--policy", str(d / "bad.toml")], None


def broken_list_line(d: Path) -> Broken:
    (d / "lists" / "nl").mkdir(parents=True)
    (d / "lists" / "nl" / "coarse.txt").write_text("grommelkop\nkap(ot\n")
    return ["--lists", str(d / "lists")], None


def port_taken(d: Path) -> Broken:
    """An HTTP server that is not klaswacht on the proxy port."""

    class NotKlaswacht(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotKlaswacht)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return ["--proxy-port", str(server.server_address[1])], stop


CASES: dict[str, tuple[Callable[[Path], Broken], list[str]]] = {
    "mode 0755": (mode_0755, ["✗ data dir", "mode 0755", "run: chmod 700"]),
    "CA missing": (ca_missing, ["✗ CA", "mitmproxy-ca.pem missing", "run: klaswacht run once to make the CA"]),
    "CA corrupt": (ca_corrupt, ["✗ CA", "cannot be read as a CA", "klaswacht restore"]),
    "CA expiring": (ca_expiring, ["✗ CA", "expires on", "make a new CA"]),
    "database locked": (database_locked, ["✗ database lock", "is locked by process", "fuser -v"]),
    "database missing": (database_missing, ["✗ database", "does not exist", "klaswacht run once"]),
    "policy syntax error": (policy_syntax_error, ["✗ policy", "bad.toml:4:", "klaswacht check policy"]),
    "broken list line": (broken_list_line, ["✗ lists", "coarse.txt:2:", "klaswacht check lists"]),
    "port taken": (port_taken, ["✗ proxy port", "is taken by something that is not klaswacht's proxy", "ss -ltnp"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_deployment_is_named_with_a_fix(case: str, deployment: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(deployment, data_dir)
    breaker, says = CASES[case]
    extra, cleanup = breaker(data_dir)
    try:
        code = main([*doctor_args(data_dir), *extra])  # a later --proxy-port wins
    finally:
        if cleanup:
            cleanup()
    out = capsys.readouterr().out
    assert code == 1, out
    failing = [line for line in out.splitlines() if line.startswith("✗")]
    assert len(failing) == 1, out  # only the broken thing fails
    for text in says:
        assert text in failing[0], (text, out)
    assert "— fix: " in failing[0]


def test_an_old_clock_and_an_unsynchronised_clock_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checks = list(doctor.check_clock(datetime(2020, 1, 1, tzinfo=UTC)))
    assert checks[0].ok is False and "2020-01-01" in checks[0].detail
    fake = tmp_path / "timedatectl"
    fake.write_text("#!/bin/sh\necho no\n")
    fake.chmod(0o755)
    monkeypatch.setattr(doctor.shutil, "which", lambda name: str(fake))
    sync = list(doctor.check_clock(datetime.now(UTC)))[1]
    assert sync.ok is False and "timedatectl set-ntp true" in sync.line()


def test_a_missing_data_dir_says_how_to_make_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(doctor_args(tmp_path / "nowhere")) == 1
    out = capsys.readouterr().out
    assert "✗ data dir: " in out and "does not exist" in out and "klaswacht run once" in out


def test_transparent_mode_checks_forwarding_and_nft(deployment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(doctor_args(deployment, "--transparent"))
    out = capsys.readouterr().out
    forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    assert ("✓ ip forwarding" if forward == "1" else "✗ ip forwarding") in out
    assert ("✓ nftables" if shutil.which("nft") else "✗ nftables: nft not found") in out
    forward6 = Path("/proc/sys/net/ipv6/conf/all/forwarding")
    assert ("✓ ipv6 forwarding" if not forward6.exists() or forward6.read_text().strip() == "1"
            else "! ipv6 forwarding") in out


@pytest.mark.parametrize(("ipv4", "ipv6", "marks"), [
    ("1", "1", [True, True]),
    ("1", None, [True, True]),  # IPv6 off in the kernel: nothing to route
    ("1", "0", [True, None]),  # a warning: an IPv4-only school is fine
    ("0", "1", [False, True]),
    ("unreadable (denied)", "0", [False, None]),
])
def test_forwarding_is_checked_for_ipv4_and_ipv6(ipv4: str, ipv6: str | None, marks: list[bool | None]) -> None:
    checks = list(doctor.forwarding_checks(ipv4, ipv6))
    assert [c.ok for c in checks] == marks
    assert all(c.fix for c in checks if c.ok is not True)
