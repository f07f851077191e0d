"""The servers of the proxy benchmark: the origin (nginx) and the targets (mitmdump, e2guardian, klaswacht).

All of them run inside the benchmark's network namespace (bench/proxies.py), where every host name of
bench/traffic.py resolves to 127.0.0.1 and every listener is on loopback. Each target knows its
processes, so the benchmark can read their CPU time and peak memory from /proc.
"""

from __future__ import annotations

import datetime
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bench.traffic import HOSTS, PAGE_SIZES

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0
UPSTREAM_CA_ENV = "KLASWACHT_UPSTREAM_CA"  # read by proxy/worker.py

_WORDS = ("de", "het", "een", "school", "les", "kinderen", "werkstuk", "spreekbeurt", "rekenen", "taal",
          "lezen", "schrijven", "aardrijkskunde", "geschiedenis", "natuur", "dieren", "planten", "weer",
          "klimaat", "rivier", "zee", "stad", "dorp", "fiets", "trein", "bus", "huis", "tuin", "boek",
          "bibliotheek", "muziek", "tekenen", "gym", "pauze", "juf", "meester", "groep", "leerling", "klas",
          "opdracht", "antwoord", "vraag")


# --- the origin: a CA, one certificate for every host name, the pages, nginx


def _ca(name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A private CA's key and self-signed certificate, valid for 30 days."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    return ca_key, ca


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_certificates(folder: Path, names: tuple[str, ...] = HOSTS) -> tuple[Path, Path, Path]:
    """A private CA and a certificate for `names` signed by it: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca = _ca("klaswacht bench origin CA")
    ca_name = ca.subject
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem_key(key))
    return paths


def make_page(size: int, seed: int) -> bytes:
    """An ordinary Dutch-looking school page of exactly `size` bytes (a content scanner has text to read)."""
    rng = random.Random(seed)
    head = b"<!doctype html><html lang=\"nl\"><head><meta charset=\"utf-8\"><title>Les</title></head><body>\n"
    tail = b"</body></html>\n"
    body = bytearray()
    while len(head) + len(body) + len(tail) < size:
        body += ("<p>" + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 30))) + ".</p>\n").encode()
    cut = size - len(head) - len(tail)
    return head + bytes(body[:cut]) + tail


@dataclass
class Process:
    """A started server: the process we own, and how to stop it."""

    name: str
    popen: subprocess.Popen[bytes] | subprocess.Popen[str]
    stop_signal: int = signal.SIGTERM
    log: Path | None = None

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(self.stop_signal)
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def _wait_port(port: int, process: subprocess.Popen[bytes], name: str, log: Path | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{name} exited ({process.returncode}) before listening on {port}\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on {port} within {START_TIMEOUT:.0f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_nginx(work: Path) -> tuple[Process, Path]:
    """nginx on 127.0.0.1:80 and :443 for every host, any path answered with the 2 KB page; (process, CA)."""
    folder = work / "origin"
    (folder / "www").mkdir(parents=True)
    ca, cert, key = make_certificates(folder)
    for path, size in PAGE_SIZES.items():
        (folder / "www" / path.lstrip("/")).write_bytes(make_page(size, size))
    conf = folder / "nginx.conf"
    conf.write_text(f"""
worker_processes 2;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type text/html;
    keepalive_requests 1000000;
    client_body_temp_path {folder}/tmp;
    server {{
        listen 127.0.0.1:80 default_server;
        listen 127.0.0.1:443 ssl default_server;
        server_name _;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {folder}/www;
        location / {{ try_files $uri /2k.html; }}
    }}
}}
""")
    log = folder / "nginx.out"
    with log.open("wb") as out:
        popen = subprocess.Popen(["nginx", "-c", str(conf), "-g", "daemon off;"], stdout=out, stderr=out)
    _wait_port(443, popen, "nginx", log)
    return Process("nginx", popen, signal.SIGQUIT, log), ca


# --- the targets


@dataclass
class Target:
    """One thing to measure: where its proxy listens (None: straight to the origin) and its processes."""

    name: str
    proxy: tuple[str, int] | None
    processes: list[Process] = field(default_factory=list)
    metrics_urls: list[str] = field(default_factory=list)

    @property
    def metrics_url(self) -> str | None:
        return self.metrics_urls[0] if self.metrics_urls else None

    def pids(self) -> list[int]:
        """The proxy's processes now: each started process and its descendants, but not a dashboard."""
        roots = [p.popen.pid for p in self.processes]
        return [pid for pid in descendants(roots) if "dashboards.serve" not in cmdline(pid)]

    def worker_pids(self) -> list[int]:
        """The processes that carry traffic: klaswacht's proxy workers, else every proxy process."""
        pids = self.pids()
        workers = [pid for pid in pids if "proxy.worker" in cmdline(pid)]
        return workers or pids

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop()


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(roots: list[int]) -> list[int]:
    """The roots and every process below them, from the parent ids in /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if Path(f"/proc/{pid}").exists():
            out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def start_direct() -> Target:
    return Target("nginx direct", None)


def start_mitmdump(work: Path, origin_ca: Path) -> Target:
    """Bare mitmdump, every connection decrypted, no addon, no output per flow; it trusts the origin's CA."""
    folder = work / "mitmdump"
    folder.mkdir()
    port = free_port()
    log = folder / "mitmdump.out"
    with log.open("wb") as out:
        popen = subprocess.Popen([str(VENV_BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1",
                                  "--listen-port", str(port), "--set", f"confdir={folder}",
                                  "--set", f"ssl_verify_upstream_trusted_ca={origin_ca}"],
                                 stdout=out, stderr=out, start_new_session=True)
    _wait_port(port, popen, "mitmdump", log)
    return Target("mitmdump", ("127.0.0.1", port), [Process("mitmdump", popen, log=log)])


def start_e2guardian(work: Path, origin_ca: Path | None = None) -> Target:
    """e2guardian with Debian's default configuration, changed only to listen on loopback; with `origin_ca`,
    also with its HTTPS interception (MITM) switched on, trusting the origin's CA.

    The two files are copied to a lower-case folder (e2guardian lower-cases include paths) and changed:
    filterip and filterports (loopback, a free port), transparenthttpsport commented out (it would
    listen on every address), and the pid and access-log files in the folder. The filter group file
    (e2guardianf1.conf, found beside the main file) and every list stay Debian's in /etc/e2guardian.
    With MITM, the settings Debian's comments name for it: `enablessl = on` with a CA, its key, the key of
    the generated certificates and their folder (made here), `sslcertificatepath` (a hashed folder with the
    origin's CA, so that it verifies servers as mitmdump and klaswacht do), and `sslmitm = on` in the filter
    group, which decrypts every HTTPS site but the exception lists'.
    In the foreground (-N) SIGTERM makes it restart, so it is stopped with SIGKILL, by its pid.
    """
    folder = work / ("e2guardianmitm" if origin_ca else "e2guardian")
    folder.mkdir()
    port = free_port()
    settings = {"filterip": "filterip = 127.0.0.1", "filterports": f"filterports = {port}"}
    if origin_ca is not None:
        settings.update(_e2guardian_mitm(folder, origin_ca))
    lines = []
    for line in Path("/etc/e2guardian/e2guardian.conf").read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if key in settings:
            line = settings.pop(key)
        elif key == "transparenthttpsport":
            line = "#" + line
        lines.append(line)
    lines += [*settings.values(), f"pidfilename = '{folder}/e2guardian.pid'", f"loglocation = '{folder}/access.log'"]
    conf = folder / "e2guardian.conf"
    conf.write_text("\n".join(lines) + "\n")
    group = Path("/etc/e2guardian/e2guardianf1.conf").read_text()
    if origin_ca is not None:
        assert "\nsslmitm = off\n" in group, "Debian's e2guardianf1.conf changed: sslmitm not found"
        group = group.replace("\nsslmitm = off\n", "\nsslmitm = on\n")
    (folder / "e2guardianf1.conf").write_text(group)
    for path in (folder, *folder.rglob("*")):
        os.chown(path, *_user("e2guardian"))
    log = folder / "e2guardian.out"
    with log.open("wb") as out:
        popen = subprocess.Popen(["e2guardian", "-N", "-c", str(conf)], stdout=out, stderr=out,
                                 start_new_session=True)
    _wait_port(port, popen, "e2guardian", log)
    name = "e2guardian MITM" if origin_ca else "e2guardian"
    return Target(name, ("127.0.0.1", port), [Process(name, popen, signal.SIGKILL, log)])


def _e2guardian_mitm(folder: Path, origin_ca: Path) -> dict[str, str]:
    """The CA and keys of e2guardian's MITM, and the settings of e2guardian.conf that name them."""
    private = folder / "private"
    (private / "generatedcerts").mkdir(parents=True)
    ca_key, ca = _ca("klaswacht bench e2guardian CA")
    (private / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (private / "ca.key").write_bytes(_pem_key(ca_key))
    (private / "cert.key").write_bytes(_pem_key(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    trusted = folder / "trusted"
    trusted.mkdir()
    (trusted / "origin.pem").write_bytes(origin_ca.read_bytes())
    subprocess.run(["openssl", "rehash", str(trusted)], check=True, capture_output=True, timeout=30)
    return {"enablessl": "enablessl = on", "sslcertificatepath": f"sslcertificatepath = '{trusted}/'",
            "cacertificatepath": f"cacertificatepath = '{private}/ca.pem'",
            "caprivatekeypath": f"caprivatekeypath = '{private}/ca.key'",
            "certprivatekeypath": f"certprivatekeypath = '{private}/cert.key'",
            "generatedcertpath": f"generatedcertpath = '{private}/generatedcerts/'"}


def _user(name: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def start_klaswacht(work: Path, origin_ca: Path, workers: int, policy: str | None = None) -> Target:
    """`klaswacht run --period lesson` with the shipped lists and primary policy (or `policy`), in a fresh data dir.

    It trusts the origin's CA through KLASWACHT_UPSTREAM_CA (proxy/worker.py), as it would a school's own CA.
    """
    name = f"klaswacht w{workers}"
    folder = work / f"klaswacht-w{workers}"
    folder.mkdir()
    log = folder / "klaswacht.err"
    env = {**os.environ, UPSTREAM_CA_ENV: str(origin_ca)}
    with log.open("wb") as err:
        popen = subprocess.Popen([str(VENV_BIN / "klaswacht"), "run", "--period", "lesson",
                                  "--data-dir", str(folder / "data"), "--proxy-port", "0", "--dashboard-port", "0",
                                  "--metrics-port", "0", "--workers", str(workers),
                                  "--allow-gateway-addresses",  # the origin is nginx on loopback
                                  *(["--policy", policy] if policy else [])],
                                 stdout=subprocess.PIPE, stderr=err, env=env, text=True, start_new_session=True)
    found: dict[str, str] = {}
    metrics: list[str] = []  # one line today; one per worker if a later klaswacht prints per-worker endpoints

    def read() -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            key, _, value = line.strip().partition(": ")
            found[key] = value
            if key == "metrics":
                metrics.append(value)
            if key == "ca":
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    process = Process(name, popen, log=log)
    if "ca" not in found:
        process.stop()
        raise RuntimeError(f"{name} did not start:\n{log.read_text(errors='replace')[-2000:]}")
    host, _, port = found["proxy"].removeprefix("http://").rpartition(":")
    # Keep reading its standard output so that it never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in popen.stdout or ()], daemon=True).start()
    return Target(name, (host, int(port)), [process], metrics_urls=metrics)
