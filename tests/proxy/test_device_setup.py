"""The setup host (issue 7): CA landing page, CA files, PAC and WPAD, answered by the proxy itself.

Through a real `klaswacht run` with a parent proxy: in a lesson, in a break and for a banned pupil the
proxy answers `http://klaswacht.school/...` (and `/wpad.dat` on `wpad.*`) itself, and nothing of it reaches
the parent. The PAC file's rules are checked in pure Python (and with node, when it is installed).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import CollectorRegistry
from proxy_helpers import ROOT, Parent, Running, fetch, fetch_from, start, start_with_a_banned_pupil, stopped_after

from proxy.addon import Klaswacht
from proxy.devicesetup import (
    CA_FILE,
    PAC_TYPE,
    check_host_name,
    check_proxy_address,
    colon_hex,
    pac_file,
    pac_proxy_address,
    read_ca,
    setup_path,
)
from proxy.metrics import ProxyMetrics

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from mitmproxy import exceptions
    from mitmproxy.test import taddons

BANNED = "127.0.0.7"  # pupil 3001's device, banned for an hour
SETUP = "http://klaswacht.school"


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory, parent: Parent) -> Iterator[Running]:
    yield from stopped_after(start_with_a_banned_pupil(tmp_path_factory.mktemp("setup-lesson"), "3001", "Sam de Vries",
                                                       BANNED, "--period", "lesson", "--upstream", parent.url))


@pytest.fixture(scope="module")
def pause(tmp_path_factory: pytest.TempPathFactory, parent: Parent) -> Iterator[Running]:
    yield from stopped_after(start(tmp_path_factory.mktemp("setup-break"), "--period", "break",
                                   "--upstream", parent.url))


def raw(proxy: str, url: str, host: str | None = None, method: str = "GET",
        source: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """A request to the proxy's port: absolute form through it (`url`), or origin form with a Host header (as a
    device that reaches the setup host directly sends it): (status, headers lower-cased, body bytes)."""
    address, port = proxy.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(address, int(port), timeout=20, source_address=(source, 0))
    try:
        conn.request(method, url, headers={"Host": host} if host else {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def ca_file(running: Running) -> bytes:
    return Path(running.lines["ca"]).read_bytes()


def sha256_of(pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    return colon_hex(hashlib.sha256(der).digest())


def nothing_upstream(parent: Parent) -> None:
    assert not [u for u in parent.urls() if "klaswacht.school" in u or "wpad" in u], parent.urls()


# --- the pure parts

def test_colon_hex_is_upper_case_pairs() -> None:
    assert colon_hex(bytes([0, 10, 255])) == "00:0A:FF"
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", colon_hex(hashlib.sha256(b"x").digest()))


def test_read_ca_refuses_a_file_without_a_certificate() -> None:
    with pytest.raises(ValueError):
        read_ca((ROOT / "pyproject.toml").read_bytes())


@pytest.mark.parametrize(("host", "port", "expected"), [
    ("10.20.0.1", 8080, "10.20.0.1:8080"),
    ("", 8080, "klaswacht.school:8080"),
    ("0.0.0.0", 3128, "klaswacht.school:3128"),
    ("::", 8080, "klaswacht.school:8080"),
    ("fd00::1", 8080, "[fd00::1]:8080"),
])
def test_pac_proxy_address(host: str, port: int, expected: str) -> None:
    assert pac_proxy_address(host, port, "klaswacht.school") == expected


def test_option_values_are_checked() -> None:
    assert check_host_name("Klaswacht.School.") == "klaswacht.school"
    assert check_proxy_address("proxy.school.nl:8080") == "proxy.school.nl:8080"
    assert check_proxy_address("[fd00::1]:3128") == "[fd00::1]:3128"
    for bad in ("", "a b", "-x.nl", "x..nl", "http://x.nl"):
        with pytest.raises(ValueError):
            check_host_name(bad)
    for bad in ("proxy.nl", "proxy.nl:0", "proxy.nl:70000", "[zz]:80", "a b:80"):
        with pytest.raises(ValueError):
            check_proxy_address(bad)


def test_addon_options_refuse_bad_values() -> None:
    addon = Klaswacht(ProxyMetrics(CollectorRegistry()))
    with taddons.context(addon) as tctx:
        tctx.configure(addon, klaswacht_setup_host="wifi.school.nl", klaswacht_pac_proxy="10.0.0.1:8080")
        with pytest.raises(exceptions.OptionsError, match="klaswacht_setup_host"):
            tctx.configure(addon, klaswacht_setup_host="not a host")
        with pytest.raises(exceptions.OptionsError, match="klaswacht_pac_proxy"):
            tctx.configure(addon, klaswacht_pac_proxy="10.0.0.1")


@pytest.mark.parametrize(("host", "path", "expected"), [
    ("klaswacht.school", "/", "/"),
    ("KLASWACHT.school.", "/ca?x=1", "/ca"),
    ("klaswacht.school:8080", "/proxy.pac", "/proxy.pac"),
    ("klaswacht.school", "/iets", "/iets"),
    ("wpad.school.nl", "/wpad.dat", "/wpad.dat"),
    ("wpad", "/wpad.dat", "/wpad.dat"),
    ("wpad.school.nl", "/", None),
    ("www.klaswacht.school", "/", None),
    ("klaswacht.school.evil.nl", "/ca", None),
    ("notwpad.nl", "/wpad.dat", None),
])
def test_setup_path(host: str, path: str, expected: str | None) -> None:
    assert setup_path(host, path, "klaswacht.school") == expected


def pac_route(pac: str, host: str) -> str:
    """The PAC file's answer for `host`, by reading its rules (the constructs pac_file writes) in Python."""
    host = host.lower()
    names = re.findall(r'host === "([^"]+)"', pac)
    if "." not in host or host in names:  # isPlainHostName, and the named hosts
        return "DIRECT"
    if re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,3}){3}", host):
        address = sum(int(p) << s for p, s in zip(host.split("."), (24, 16, 8, 0), strict=True))
        for net, mask in re.findall(r'isInNet\(host, "([\d.]+)", "([\d.]+)"\)', pac):
            n, m = (sum(int(p) << s for p, s in zip(x.split("."), (24, 16, 8, 0), strict=True)) for x in (net, mask))
            if address & m == n:
                return "DIRECT"
    found = re.findall(r'return "(PROXY [^"]+)";', pac)
    assert len(found) == 1
    return found[0]


CASES = [
    ("www.google.nl", "PROXY 10.20.0.1:8080"),
    ("tiktok.com", "PROXY 10.20.0.1:8080"),
    ("8.8.8.8", "PROXY 10.20.0.1:8080"),
    ("172.32.0.1", "PROXY 10.20.0.1:8080"),
    ("192.169.1.1", "PROXY 10.20.0.1:8080"),
    ("klaswacht.school.evil.nl", "PROXY 10.20.0.1:8080"),
    ("10.1.2.3", "DIRECT"),
    ("172.16.0.1", "DIRECT"),
    ("172.31.255.255", "DIRECT"),
    ("192.168.1.10", "DIRECT"),
    ("127.0.0.1", "DIRECT"),
    ("localhost", "DIRECT"),
    ("printer", "DIRECT"),
    ("klaswacht.school", "DIRECT"),
    ("KLASWACHT.SCHOOL", "DIRECT"),
]


def test_pac_rules() -> None:
    pac = pac_file("10.20.0.1:8080", "klaswacht.school")
    assert "function FindProxyForURL(url, host)" in pac and "isPlainHostName(host)" in pac
    assert "DIRECT;" not in pac.replace(" ", "")  # no DIRECT fallback after the proxy: fail closed
    for host, expected in CASES:
        assert pac_route(pac, host) == expected, host


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_pac_rules_in_javascript() -> None:
    """The same cases evaluated by node, with the PAC helpers the rules use written out."""
    pac = pac_file("10.20.0.1:8080", "klaswacht.school")
    script = pac + """
function isPlainHostName(h) { return h.indexOf(".") < 0; }
function ip(a) { return a.split(".").reduce((n, p) => n * 256 + Number(p), 0); }
function isInNet(h, net, mask) {
  const m = ip(mask), a = ip(h); return (a - (a % (2 ** 32 - m))) === ip(net);
}
const cases = JSON.parse(process.argv[1]);
console.log(JSON.stringify(cases.map(h => FindProxyForURL("http://" + h + "/", h))));
"""
    hosts = [host for host, _ in CASES]
    out = subprocess.run(["node", "-e", script, json.dumps(hosts)], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    assert json.loads(out) == [expected for _, expected in CASES]


# --- through a real `klaswacht run`

@pytest.mark.parametrize("path", ["/", "/ca"])
def test_landing_page_in_a_lesson(lesson: Running, parent: Parent, path: str) -> None:
    status, page = fetch(lesson.proxy, SETUP + path)
    assert status == 200 and '<html lang="nl">' in page
    assert sha256_of(ca_file(lesson)) in page
    assert page.index("Chromebook") < page.index('lang="en"')  # Dutch first
    for text in ("Trusted Root Certification Authorities", "Certificaatvertrouwensinstellingen",
                 "Certificate Trust Settings", "ImportEnterpriseRoots", "Altijd vertrouwen", "Always Trust"):
        assert text in page
    nothing_upstream(parent)


def test_landing_page_in_a_break_and_while_banned(lesson: Running, pause: Running, parent: Parent) -> None:
    status, page = fetch(pause.proxy, SETUP + "/")
    assert status == 200 and sha256_of(ca_file(pause)) in page
    assert fetch(pause.proxy, "http://www.speelgoedwinkel.nl/")[0] == 403  # the break does block other pages
    status, page = fetch_from(lesson.proxy, SETUP + "/ca", BANNED)
    assert status == 200 and sha256_of(ca_file(lesson)) in page
    assert fetch_from(lesson.proxy, "http://www.speelgoedwinkel.nl/", BANNED)[0] == 403  # the ban holds elsewhere
    nothing_upstream(parent)


def test_ca_files(lesson: Running, parent: Parent) -> None:
    pem = ca_file(lesson)
    status, headers, body = raw(lesson.proxy, SETUP + "/ca.pem")
    assert (status, body) == (200, pem)
    assert headers["content-type"] == "application/x-pem-file"
    assert 'filename="klaswacht-ca.pem"' in headers["content-disposition"]
    status, headers, body = raw(lesson.proxy, SETUP + "/ca.crt", source=BANNED)
    assert status == 200 and headers["content-type"] == "application/x-x509-ca-cert"
    assert x509.load_der_x509_certificate(body) == x509.load_pem_x509_certificate(pem)
    nothing_upstream(parent)


def test_pac_and_wpad(lesson: Running, pause: Running, parent: Parent) -> None:
    address = lesson.proxy.removeprefix("http://")  # listens on 127.0.0.1:PORT: the PAC names just that
    for url in (SETUP + "/proxy.pac", SETUP + "/wpad.dat", "http://wpad.school.nl/wpad.dat"):
        status, headers, body = raw(lesson.proxy, url)
        assert status == 200 and headers["content-type"] == PAC_TYPE, url
        pac = body.decode()
        assert "FindProxyForURL" in pac and pac_route(pac, "www.google.nl") == f"PROXY {address}"
        assert pac_route(pac, "klaswacht.school") == pac_route(pac, "192.168.4.4") == "DIRECT"
    status, headers, body = raw(pause.proxy, SETUP + "/proxy.pac", source=BANNED)
    assert status == 200 and f"PROXY {pause.proxy.removeprefix('http://')}" in body.decode()
    nothing_upstream(parent)


def test_reached_directly_with_a_host_header(lesson: Running, parent: Parent) -> None:
    """A device without any proxy setting (the PAC file's DIRECT) asks the gateway in origin form."""
    status, headers, body = raw(lesson.proxy, "/", host="klaswacht.school:8080")
    assert status == 200 and sha256_of(ca_file(lesson)) in body.decode()
    assert b"http://klaswacht.school:8080/proxy.pac" in body  # the PAC URL as the device reached it
    status, headers, body = raw(lesson.proxy, "/wpad.dat", host="wpad.school.nl")
    assert status == 200 and headers["content-type"] == PAC_TYPE
    nothing_upstream(parent)


def test_other_paths_and_methods_are_the_proxys_own_answer(lesson: Running, parent: Parent) -> None:
    status, page = fetch(lesson.proxy, SETUP + "/admin")
    assert status == 404 and '<html lang="nl">' in page and "upstream page" not in page
    status, page = fetch(lesson.proxy, SETUP + "/ca", data=b"x=1")
    assert status == 405
    # wpad.* hosts are answered only for /wpad.dat: anything else there is judged and goes upstream as usual
    status, page = fetch(lesson.proxy, "http://wpad.school.nl/other")
    assert status == 200 and "upstream page" in page
    assert [u for u in parent.urls() if "wpad" in u] == ["http://wpad.school.nl/other"]
    parent.seen[:] = [s for s in parent.seen if "wpad" not in s[1]]
    nothing_upstream(parent)


def test_report_path_still_works_on_the_setup_host(lesson: Running, parent: Parent) -> None:
    status, page = fetch(lesson.proxy, SETUP + "/.klaswacht/meld")
    assert status == 200 and "Meld het bij je leerkracht" in page
    nothing_upstream(parent)


def test_ca_file_constant_matches_the_worker() -> None:
    from proxy.worker import CA_FILE as WORKER_CA_FILE
    assert CA_FILE == WORKER_CA_FILE


def test_run_names_the_setup_host_and_the_pac_proxy(tmp_path: Path, parent: Parent) -> None:
    """`klaswacht run --setup-host --pac-proxy` reach the proxy: the landing page answers on the school's own
    name, and the PAC file names the address given."""
    running = start(tmp_path / "data", "--period", "lesson", "--upstream", parent.url,
                    "--setup-host", "filter.school.example", "--pac-proxy", "10.20.0.1:3128")
    try:
        before = len(parent.seen)
        status, pac = fetch(running.proxy, "http://filter.school.example/proxy.pac")
        assert status == 200 and 'PROXY 10.20.0.1:3128' in pac
        assert fetch(running.proxy, "http://filter.school.example/ca")[0] == 200
        assert len(parent.seen) == before  # answered by the proxy itself
    finally:
        running.stop()
